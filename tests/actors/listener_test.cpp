// Every reason to look at the queue reaches the dispatcher as one `wake`,
// and every wake leads to a claim: a poll tick, a notification, a
// reconnect, a start and a new dispatcher.
#define CAF_SUITE listener
#include "tests/actors/fixture.hpp"

using namespace imagen;
using namespace imagen::testing;

namespace {

struct listener_fixture : actor_fixture {
  caf::actor writer;
  caf::actor disp;
  caf::actor lis;

  listener_fixture() {
    writer = spawn_writer();
    disp = spawn_dispatcher(writer);
    lis = spawn_listener(disp);
    sched.run();
  }

  /// Scripts one wait of the source to return `reason`, and sends the
  /// listener the `wait` that the real worker's pump would send.
  void wait_once(std::optional<wake_reason> reason) {
    if (reason)
      source->script.push_back(*reason);
    self->send(lis, wait_atom::value);
    expect((wait_atom), from(self).to(lis));
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(listener_tests, listener_fixture)

CAF_TEST(a start wakes the dispatcher and the dispatcher claims at once) {
  // The fixture ran both starts: the dispatcher's own claim and the
  // listener's first wake coalesced into claims limited to the idle slots.
  CAF_REQUIRE(!queue->claim_limits.empty());
  for (auto limit : queue->claim_limits)
    CAF_CHECK_EQUAL(limit, 3);
  CAF_CHECK(queue->claim_limits.size() <= 2u);
}

CAF_TEST(a poll tick leads to a claim) {
  auto claims = queue->claim_limits.size();
  add_runnable(1);

  // The tick is the poll interval with at most 10% jitter either way.
  CAF_CHECK_EQUAL(advance_time(cfg.poll_interval * 88 / 100), 0u);
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims);
  CAF_CHECK_EQUAL(advance_time(cfg.poll_interval * 24 / 100), 1u);
  expect((tick_atom), from(lis).to(lis));
  expect((wake_atom), from(lis).to(disp));
  expect((claim_atom), from(disp).to(disp));
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
  expect((run_atom, job),
         from(disp).to(slot(disp, 0)).with(_, make_job("job-1")));

  // The tick re-arms itself.
  sched.run();
  CAF_CHECK_EQUAL(advance_time(cfg.poll_interval * 12 / 10), 1u);
  expect((tick_atom), from(lis).to(lis));
  expect((wake_atom), from(lis).to(disp));
}

CAF_TEST(a notification leads to a claim) {
  auto claims = queue->claim_limits.size();
  add_runnable(2);

  wait_once(wake_reason::notified);

  expect((wake_atom), from(lis).to(disp));
  expect((claim_atom), from(disp).to(disp));
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
  CAF_CHECK_EQUAL(queue->claim_limits.back(), 3);
  expect((run_atom, job),
         from(disp).to(slot(disp, 0)).with(_, make_job("job-1")));
  expect((run_atom, job),
         from(disp).to(slot(disp, 1)).with(_, make_job("job-2")));
}

CAF_TEST(a reconnect leads to a claim) {
  auto claims = queue->claim_limits.size();
  add_runnable(1);

  wait_once(wake_reason::reconnected);

  expect((wake_atom), from(lis).to(disp));
  expect((claim_atom), from(disp).to(disp));
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
  expect((run_atom, job),
         from(disp).to(slot(disp, 0)).with(_, make_job("job-1")));
}

CAF_TEST(a wait without news wakes nobody) {
  auto claims = queue->claim_limits.size();

  wait_once(std::nullopt);
  sched.run();

  CAF_CHECK_EQUAL(source->waits, 1);
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims);
}

CAF_TEST(a new dispatcher is woken at once and gets the later wakes) {
  auto other_writer = spawn_writer();
  auto other = spawn_dispatcher(other_writer);
  sched.run();
  auto claims = queue->claim_limits.size();

  self->send(lis, dispatcher_atom::value, other);
  expect((dispatcher_atom, caf::actor), from(self).to(lis));
  expect((wake_atom), from(lis).to(other));
  expect((claim_atom), from(other).to(other));
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);

  wait_once(wake_reason::notified);
  expect((wake_atom), from(lis).to(other));
}

CAF_TEST_FIXTURE_SCOPE_END()
