// How a dispatcher ends: a shutdown drains the jobs in flight and their
// writes, the grace cancels what still runs, db_timeout gives up on
// writes that never succeed; with exit_when_idle the run ends once
// nothing is pending, running or unwritten.
#define CAF_SUITE shutdown
#include "tests/actors/fixture.hpp"

using namespace imagen;
using namespace imagen::testing;

namespace {

struct shutdown_fixture : actor_fixture {
  caf::actor writer;
  caf::actor disp;
  std::vector<caf::actor> slots;
  std::shared_ptr<std::optional<caf::error>> ended;

  /// Starts a writer and a dispatcher with the configuration as the test
  /// left it.
  void start() {
    writer = spawn_writer();
    disp = spawn_dispatcher(writer);
    ended = watch(disp);
    sched.run();
    // An actor's state is gone with it.
    if (!ended->has_value())
      slots = slots_of(disp);
  }

  /// Sends the dispatcher a shutdown and lets it handle it, while the
  /// slots keep their jobs.
  void shutdown(caf::timespan grace) {
    self->send(disp, shutdown_atom::value,
               static_cast<std::int64_t>(
                   std::chrono::duration_cast<std::chrono::milliseconds>(grace)
                       .count()));
    run_except(slots);
  }

  bool ended_normally() const {
    return ended->has_value() && exit_status(**ended) == 0;
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(shutdown_tests, shutdown_fixture)

CAF_TEST(shutdown waits for the jobs in flight and their writes) {
  start();
  add_runnable(2);
  self->send(disp, wake_atom::value);
  run_except(slots);

  shutdown(cfg.shutdown_grace);
  run_except(slots);
  CAF_CHECK(!ended->has_value());
  // No claim after the shutdown, whatever wakes it.
  add_runnable(1, "late-");
  auto claims = queue->claim_limits.size();
  self->send(disp, wake_atom::value);
  run_except(slots);
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims);

  queue->failing_writes = 1;
  sched.run();
  CAF_CHECK(!ended->has_value());
  advance_and_run(write_retry_base);

  CAF_CHECK(ended_normally());
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK_EQUAL(queue->times_written({"job-2", 1}), 1u);
  CAF_CHECK_EQUAL(queue->runnable.size(), 1u);
}

CAF_TEST(the heartbeat goes on during shutdown until the last write) {
  start();
  add_runnable(1);
  queue->failing_writes = 1000;
  self->send(disp, wake_atom::value);
  sched.run();
  shutdown(10 * cfg.lease);
  sched.run();

  // The job is finished but not written: its lease is still renewed, and
  // rescue, which is for other workers' rows, has stopped.
  advance_and_run(cfg.lease / 3);
  advance_and_run(cfg.lease / 3);
  CAF_CHECK_EQUAL(queue->heartbeats.size(), 2u);
  CAF_CHECK_EQUAL(queue->heartbeats.back(),
                  (std::vector<job_ref>{job_ref{"job-1", 1}}));
  // Only the start's rescue: none while shutting down.
  CAF_CHECK_EQUAL(queue->rescues.size(), 1u);

  queue->failing_writes = 0;
  advance_and_run(write_retry_cap);
  CAF_CHECK(ended_normally());
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  auto beats = queue->heartbeats.size();
  advance_and_run(cfg.lease);
  CAF_CHECK_EQUAL(queue->heartbeats.size(), beats);
}

CAF_TEST(when the grace is over running jobs are cancelled and released) {
  start();
  add_runnable(2);
  self->send(disp, wake_atom::value);
  run_except(slots);
  std::vector<std::shared_ptr<std::atomic<bool>>> cancel;
  for (const auto& s : state_of_dispatcher(disp).slots)
    cancel.push_back(s.cancel);

  shutdown(cfg.shutdown_grace);
  advance_and_run(cfg.shutdown_grace - 1ms, slots);
  CAF_CHECK(!cancel[0]->load());
  advance_and_run(1ms, slots);
  CAF_CHECK(cancel[0]->load());
  CAF_CHECK(cancel[1]->load());
  CAF_CHECK(!cancel[2]->load());
  CAF_CHECK(!ended->has_value());

  // The slots return from their pipelines with `cancelled`.
  sched.run();
  CAF_CHECK(ended_normally());
  CAF_REQUIRE_EQUAL(queue->releases.size(), 1u);
  CAF_CHECK_EQUAL(queue->releases[0],
                  (std::vector<job_ref>{{"job-1", 1}, {"job-2", 1}}));
  CAF_CHECK_EQUAL(queue->outcomes_written(), 0u);
}

CAF_TEST(a second shutdown without grace cancels at once) {
  start();
  add_runnable(1);
  self->send(disp, wake_atom::value);
  run_except(slots);
  auto flag = state_of_dispatcher(disp).slots[0].cancel;

  shutdown(cfg.shutdown_grace);
  run_except(slots);
  CAF_CHECK(!flag->load());
  shutdown(0s);
  run_except(slots);
  CAF_CHECK(flag->load());
}

CAF_TEST(shutdown gives up db_timeout after the grace when writes fail) {
  start();
  add_runnable(1);
  queue->failing_writes = 1000000;
  self->send(disp, wake_atom::value);
  sched.run();

  shutdown(cfg.shutdown_grace);
  advance_and_run(cfg.shutdown_grace);
  CAF_CHECK(!ended->has_value());
  advance_and_run(cfg.db_timeout - 1ms);
  CAF_CHECK(!ended->has_value());
  advance_and_run(1ms);

  CAF_REQUIRE(ended->has_value());
  CAF_CHECK_EQUAL(exit_status(**ended), 1);
  CAF_CHECK_EQUAL(describe(**ended),
                  "1 outcomes were not written before the shutdown deadline");
  CAF_CHECK_EQUAL(queue->outcomes_written(), 0u);
}

CAF_TEST(exit_when_idle ends at once on an empty queue) {
  cfg.exit_when_idle = true;
  start();

  CAF_CHECK(ended_normally());
  CAF_CHECK_EQUAL(queue->claim_limits.size(), 1u);
  CAF_CHECK_EQUAL(queue->next_pending_calls, 1);
}

CAF_TEST(exit_when_idle waits for a pending retry and claims it when due) {
  cfg.exit_when_idle = true;
  queue->next_pending = 3s;
  start();
  CAF_CHECK(!ended->has_value());
  CAF_CHECK_EQUAL(queue->claim_limits.size(), 1u);

  // The retry becomes runnable; the dispatcher looks when it is due.
  queue->next_pending.reset();
  add_runnable(1, "retry-");
  advance_and_run(3s - 1ms);
  CAF_CHECK_EQUAL(queue->claim_limits.size(), 1u);
  advance_and_run(1ms);

  CAF_CHECK(ended_normally());
  CAF_CHECK_EQUAL(queue->times_written({"retry-1", 1}), 1u);
}

CAF_TEST(exit_when_idle looks again at least every poll interval) {
  cfg.exit_when_idle = true;
  queue->next_pending = 1h;
  start();

  advance_and_run(cfg.poll_interval);
  CAF_CHECK_EQUAL(queue->claim_limits.size(), 2u);
  CAF_CHECK(!ended->has_value());

  // The pending row went away (another worker took it).
  queue->next_pending.reset();
  advance_and_run(cfg.poll_interval);
  CAF_CHECK(ended_normally());
}

CAF_TEST(exit_when_idle ends only once every outcome is written) {
  cfg.exit_when_idle = true;
  add_runnable(1);
  queue->failing_writes = 2;
  start();
  CAF_CHECK(!ended->has_value());

  advance_and_run(write_retry_base);
  CAF_CHECK(!ended->has_value());
  advance_and_run(write_retry_base * 2);

  CAF_CHECK(ended_normally());
  CAF_CHECK_EQUAL(queue->write_calls, 3);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
}

CAF_TEST(exit_when_idle claims the retry its own failure scheduled) {
  cfg.exit_when_idle = true;
  pipe->crash_ids = {"job-1"};
  add_runnable(1);
  // The written failure puts the row back to pending for later, as the
  // database would.
  queue->next_pending = 2s;
  start();
  CAF_CHECK(!ended->has_value());
  CAF_CHECK_EQUAL(queue->outcomes_written(), 1u);

  pipe->crash_ids.clear();
  queue->next_pending.reset();
  queue->runnable.push_back(make_job("job-1", 2));
  advance_and_run(2s);

  CAF_CHECK(ended_normally());
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 2}), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
