// The supervisor restarts the child that failed, one for one, after a
// backoff, and hands the new handle to whoever talks to it; beyond
// restart_intensity within restart_period it stops with exit status 1.
#define CAF_SUITE supervisor
#include <utility>

#include "tests/actors/fixture.hpp"

using namespace imagen;
using namespace imagen::testing;

namespace {

struct supervisor_fixture : actor_fixture {
  caf::actor sup;
  std::shared_ptr<std::optional<caf::error>> ended;

  void start() {
    sup = spawn_supervisor();
    ended = watch(sup);
    sched.run();
  }

  caf::actor child_handle(child c) {
    return deref<supervisor_actor>(sup).state[c].handle;
  }

  caf::actor writer() { return child_handle(child::status_writer); }
  caf::actor disp() { return child_handle(child::dispatcher); }
  caf::actor lis() { return child_handle(child::listener); }

  /// Ends `target` as a crash would.
  void crash(const caf::actor& target, const std::string& why) {
    // anon_send_exit only takes an exit_reason; a crash has an error.
    auto reason = caf::make_error(caf::sec::runtime_error, why);
    target->enqueue(nullptr, caf::make_message_id(),
                    caf::make_message(caf::exit_msg{target.address(), reason}),
                    nullptr);
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(supervisor_tests, supervisor_fixture)

CAF_TEST(the status writer gets the sweep of the scratch directory) {
  auto sweeps = std::make_shared<int>(0);
  sweep = [sweeps] { ++*sweeps; };
  start();
  advance_and_run(scratch_sweep_interval);
  CAF_CHECK_EQUAL(*sweeps, 1);
  // A restarted writer sweeps on its own schedule.
  crash(writer(), "writer broke");
  sched.run();
  advance_and_run(restart_backoff_base);
  CAF_REQUIRE(writer());
  advance_and_run(scratch_sweep_interval);
  CAF_CHECK_EQUAL(*sweeps, 2);
}

CAF_TEST(a failed status writer is restarted and gets the unwritten outcomes) {
  start();
  queue->failing_writes = 1000000;
  add_runnable(2);
  self->send(disp(), wake_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(queue->outcomes_written(), 0u);
  auto old = writer();
  auto others = std::make_pair(disp(), lis());
  auto queues = queue->queues_made;

  crash(old, "writer broke");
  sched.run();
  CAF_CHECK(!child_handle(child::status_writer));
  queue->failing_writes = 0;
  advance_and_run(restart_backoff_base - 1ms);
  CAF_CHECK_EQUAL(queue->queues_made, queues);
  advance_and_run(1ms);

  CAF_CHECK(writer() && writer() != old);
  // One for one: the others keep running.
  CAF_CHECK(std::make_pair(disp(), lis()) == others);
  CAF_CHECK_EQUAL(queue->queues_made, queues + 1);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK_EQUAL(queue->times_written({"job-2", 1}), 1u);
  CAF_CHECK(state_of_dispatcher(disp()).claims.empty());
  CAF_CHECK(!ended->has_value());
}

CAF_TEST(a failed dispatcher is restarted and its claims run again at once) {
  start();
  add_runnable(2);
  auto old = disp();
  auto old_writer = writer();
  auto old_listener = lis();
  auto old_slots = slots_of(old);
  self->send(old, wake_atom::value);
  run_except(old_slots);
  CAF_CHECK_EQUAL(queue->held.size(), 2u);

  crash(old, "dispatcher broke");
  sched.run();
  advance_and_run(restart_backoff_base);

  auto next = disp();
  CAF_REQUIRE(next && next != old);
  CAF_CHECK(writer() == old_writer && lis() == old_listener);
  CAF_CHECK_EQUAL(deref<listener_actor>(lis()).state.dispatcher, next);
  CAF_CHECK_EQUAL(queue->requeues.back().moved,
                  (std::vector<job_ref>{{"job-1", 1}, {"job-2", 1}}));
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 2}), 1u);
  CAF_CHECK_EQUAL(queue->times_written({"job-2", 2}), 1u);
  CAF_CHECK_EQUAL(queue->outcomes_written(), 2u);
  CAF_CHECK(queue->held.empty());
  CAF_CHECK(!ended->has_value());
}

CAF_TEST(
    a shutdown while the dispatcher awaits its restart gives back its rows) {
  start();
  add_runnable(2);
  auto old = disp();
  auto old_slots = slots_of(old);
  self->send(old, wake_atom::value);
  run_except(old_slots);
  crash(old, "dispatcher broke");
  sched.run();
  CAF_REQUIRE(!child_handle(child::dispatcher));

  self->send(sup, shutdown_atom::value);
  sched.run();

  CAF_REQUIRE(ended->has_value());
  CAF_CHECK_EQUAL(exit_status(**ended), 0);
  CAF_CHECK_EQUAL(queue->requeues.back().moved,
                  (std::vector<job_ref>{{"job-1", 1}, {"job-2", 1}}));
  CAF_CHECK(queue->held.empty());
  CAF_CHECK_EQUAL(queue->runnable.size(), 2u);
}

CAF_TEST(a dispatcher that hits a permanent error is restarted) {
  start();
  queue->broken_claims = 1;
  add_runnable(1);
  auto old = disp();
  self->send(old, wake_atom::value);
  sched.run();
  CAF_CHECK(!child_handle(child::dispatcher));

  advance_and_run(restart_backoff_base);

  CAF_CHECK(disp() && disp() != old);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK(!ended->has_value());
}

CAF_TEST(a failed listener is restarted and wakes the dispatcher) {
  start();
  auto old = lis();
  auto others = std::make_pair(writer(), disp());
  crash(old, "listener broke");
  sched.run();
  add_runnable(1);
  CAF_CHECK_EQUAL(queue->outcomes_written(), 0u);

  advance_time(restart_backoff_base);
  expect((restart_atom, int), from(sup).to(sup));
  auto next = lis();
  CAF_REQUIRE(next && next != old);
  // The new listener starts (and wakes) while the dispatcher waits.
  run_except({disp()});
  expect((wake_atom), from(next).to(disp()));
  sched.run();

  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK(std::make_pair(writer(), disp()) == others);
  CAF_CHECK(!ended->has_value());
}

CAF_TEST(the backoff doubles with each recent restart) {
  start();
  crash(writer(), "first");
  sched.run();
  advance_and_run(restart_backoff_base);
  auto second = writer();
  CAF_REQUIRE(second);

  crash(second, "second");
  sched.run();
  advance_and_run(restart_backoff_base * 2 - 1ms);
  CAF_CHECK(!child_handle(child::status_writer));
  advance_and_run(1ms);
  CAF_CHECK(writer() && writer() != second);
}

CAF_TEST(more restarts than the intensity within the period stop all) {
  start();
  auto d = disp();
  auto disp_ended = watch(d);
  for (int i = 0; i < cfg.restart_intensity; ++i) {
    crash(writer(), "again");
    sched.run();
    advance_and_run(restart_backoff_cap);
    CAF_REQUIRE(writer());
  }
  CAF_CHECK(!ended->has_value());

  crash(writer(), "once too often");
  sched.run();

  CAF_REQUIRE(ended->has_value());
  CAF_CHECK_EQUAL(exit_status(**ended), 1);
  CAF_CHECK_EQUAL(describe(**ended),
                  "status_writer restarted more than 2 times in 60000 ms");
  // The other children were stopped with it.
  CAF_CHECK(disp_ended->has_value());
}

CAF_TEST(restarts spread wider than the period do not add up) {
  start();
  for (int i = 0; i < cfg.restart_intensity + 2; ++i) {
    crash(writer(), "now and then");
    sched.run();
    advance_and_run(cfg.restart_period + 1s);
    CAF_REQUIRE(writer());
  }
  CAF_CHECK(!ended->has_value());
}

CAF_TEST(a shutdown drains and ends the supervisor with status 0) {
  start();
  add_runnable(1);
  auto d = disp();
  auto slots = slots_of(d);
  self->send(d, wake_atom::value);
  run_except(slots);

  self->send(sup, shutdown_atom::value);
  run_except(slots);
  CAF_CHECK(!lis());
  CAF_CHECK(!ended->has_value());
  sched.run();

  CAF_REQUIRE(ended->has_value());
  CAF_CHECK_EQUAL(exit_status(**ended), 0);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
}

CAF_TEST(exit_when_idle ends the supervisor with status 0) {
  cfg.exit_when_idle = true;
  add_runnable(2);
  start();

  CAF_REQUIRE(ended->has_value());
  CAF_CHECK_EQUAL(exit_status(**ended), 0);
  CAF_CHECK_EQUAL(queue->outcomes_written(), 2u);
}

CAF_TEST_FIXTURE_SCOPE_END()
