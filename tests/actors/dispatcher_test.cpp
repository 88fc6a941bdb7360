// The dispatcher's side of the protocol: claims limited to idle slots,
// coalesced wakes, leases renewed and rescued on time, slots that crash,
// and the claims a failed predecessor left behind.
#define CAF_SUITE dispatcher
#include "tests/actors/fixture.hpp"

using namespace imagen;
using namespace imagen::testing;

namespace {

struct dispatcher_fixture : actor_fixture {
  caf::actor writer;
  caf::actor disp;
  std::vector<caf::actor> slots;

  dispatcher_fixture() {
    writer = spawn_writer();
    disp = spawn_dispatcher(writer);
    sched.run();
    slots = slots_of(disp);
  }

  /// Wakes the dispatcher and runs everything but the slots, which keep
  /// the jobs they were given: busy slots.
  void wake_with_slots_busy() {
    self->send(disp, wake_atom::value);
    run_except(slots);
  }

  /// Slots 0 and 1 run a first batch and slot 2 the first of five more
  /// jobs: the last claim came back full, with work left in the queue.
  void busy_with_more_queued() {
    add_runnable(2);
    wake_with_slots_busy();
    add_runnable(5, "more-");
    wake_with_slots_busy();
  }

  std::vector<job_ref> refs(std::initializer_list<const char*> ids,
                            int attempt = 1) {
    std::vector<job_ref> result;
    for (const auto* id : ids)
      result.push_back(job_ref{id, attempt});
    return result;
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(dispatcher_tests, dispatcher_fixture)

CAF_TEST(a job goes wake claim run done outcome flush written) {
  add_runnable(1);
  self->send(disp, wake_atom::value);

  expect((wake_atom), from(self).to(disp));
  expect((claim_atom), from(disp).to(disp));
  expect((run_atom, job), from(disp).to(slots[0]).with(_, make_job("job-1")));
  expect((done_atom, int, outcome), from(slots[0]).to(disp).with(_, 0, _));
  expect((outcome_atom, outcome, int), from(disp).to(writer).with(_, _, 3));
  expect((flush_atom), from(writer).to(writer));
  expect((written_atom, std::vector<job_ref>),
         from(writer).to(disp).with(_, std::vector<job_ref>{{"job-1", 1}}));

  CAF_CHECK(state_of_dispatcher(disp).claims.empty());
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
}

CAF_TEST(a claim never asks for more than the idle slots) {
  add_runnable(2);
  wake_with_slots_busy();
  CAF_CHECK_EQUAL(queue->claim_limits.back(), 3);
  CAF_CHECK(state_of_dispatcher(disp).slots[0].running.has_value());
  CAF_CHECK(state_of_dispatcher(disp).slots[1].running.has_value());

  add_runnable(5, "more-");
  wake_with_slots_busy();

  // 3 slots, 2 busy: the limit is 1, and one job was taken.
  CAF_CHECK_EQUAL(queue->claim_limits.back(), 1);
  CAF_CHECK_EQUAL(queue->runnable.size(), 4u);
  CAF_CHECK_EQUAL(state_of_dispatcher(disp).slots[2].running->id, "more-1");

  // No slot idle: a wake claims nothing at all.
  auto claims = queue->claim_limits.size();
  wake_with_slots_busy();
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims);
}

CAF_TEST(a full batch claims again as soon as a slot frees) {
  busy_with_more_queued();
  auto claims = queue->claim_limits.size();

  // Slot 2 finishes; nobody sends a wake.
  expect((run_atom, job), from(disp).to(slots[2]));
  expect((done_atom, int, outcome), from(slots[2]).to(disp));
  run_except(slots);

  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
  CAF_CHECK_EQUAL(queue->claim_limits.back(), 1);
  CAF_CHECK_EQUAL(state_of_dispatcher(disp).slots[2].running->id, "more-2");
}

CAF_TEST(an outcome goes to the writer after the claim its slot asked for) {
  busy_with_more_queued();
  auto claims = queue->claim_limits.size();

  // Slot 2 finishes with more work queued: its next job is claimed first,
  // and only then is its outcome handed on, so that the write does not
  // compete with the claim the slot waits for.
  expect((run_atom, job), from(disp).to(slots[2]));
  expect((done_atom, int, outcome), from(slots[2]).to(disp));
  disallow((outcome_atom, outcome, int), from(disp).to(writer));
  expect((claim_atom), from(disp).to(disp));
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
  CAF_CHECK_EQUAL(state_of_dispatcher(disp).slots[2].running->id, "more-2");
  expect((outcome_atom, outcome, int), from(disp).to(writer));
  run_except(slots);
  CAF_CHECK_EQUAL(queue->times_written({"more-1", 1}), 1u);
}

CAF_TEST(a dispatcher that stops hands on the outcomes it held) {
  // A dispatcher that stops at the first slot crash.
  cfg.restart_intensity = 0;
  auto d = spawn_dispatcher(writer);
  sched.run();
  auto d_slots = slots_of(d);
  pipe->crash_ids = {"job-2"};
  add_runnable(4);
  self->send(d, wake_atom::value);
  run_except(d_slots);

  // Slot 0 reports, and slot 1 crashes, before the dispatcher looks: its
  // outcome waits for the claim that slot 0 asked for, and the crash
  // stops the dispatcher before that claim runs.
  expect((run_atom, job), from(d).to(d_slots[0]));
  expect((run_atom, job), from(d).to(d_slots[1]));
  auto reason = watch(d);
  run_except(d_slots);

  CAF_REQUIRE(reason->has_value());
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK_EQUAL(queue->times_written({"job-2", 1}), 1u);
}

// The claim an outcome waits for may bring the same job back: its lease
// was lost meanwhile (a stall longer than the lease) and a rescue made
// the row runnable again. The earlier attempt's outcome still goes to the
// writer, which fences it out and discards its image.
CAF_TEST(a held outcome survives a claim that takes its job again) {
  add_runnable(3);
  wake_with_slots_busy();
  // job-1 was rescued while slot 0 ran it: its next attempt is runnable.
  queue->runnable.push_back(make_job("job-1", 2));
  queue->foreign_rows = {"job-1"};
  stderr_capture log;

  expect((run_atom, job), from(disp).to(slots[0]).with(_, make_job("job-1")));
  expect((done_atom, int, outcome), from(slots[0]).to(disp));
  expect((claim_atom), from(disp).to(disp));
  CAF_REQUIRE_EQUAL(state_of_dispatcher(disp).slots[0].running->attempt, 2);
  run_except(slots);

  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK_NOT_EQUAL(
      log.text().find("event=job.lost_lease job=job-1 attempt=1 seen_by=write"),
      std::string::npos);
}

// A stall longer than the lease: a rescue made job-1 runnable again and
// this worker claimed its next attempt while the slot running the first
// one had not reported yet. Both attempts are tracked; the first one's
// outcome still goes to the writer (which fences it out and removes its
// image), and the second one's lease is renewed.
CAF_TEST(two attempts of one job are tracked apart) {
  add_runnable(3);
  wake_with_slots_busy();
  queue->runnable.push_back(make_job("job-1", 2));
  stderr_capture log;

  // Slot 1 finishes job-2 and is given job-1's second attempt.
  expect((run_atom, job), from(disp).to(slots[1]).with(_, make_job("job-2")));
  expect((done_atom, int, outcome), from(slots[1]).to(disp));
  run_except(slots);
  CAF_REQUIRE_EQUAL(state_of_dispatcher(disp).slots[1].running->id, "job-1");
  CAF_REQUIRE_EQUAL(state_of_dispatcher(disp).slots[1].running->attempt, 2);
  self->send(disp, heartbeat_atom::value);
  run_except(slots);
  CAF_CHECK_EQUAL(queue->heartbeats.back().size(), 3u);

  // Slot 0 reports the first attempt.
  expect((run_atom, job), from(disp).to(slots[0]).with(_, make_job("job-1")));
  expect((done_atom, int, outcome), from(slots[0]).to(disp));
  run_except(slots);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
  CAF_CHECK_EQUAL(log.text().find("event=job.unknown_outcome"),
                  std::string::npos);
  CAF_CHECK_EQUAL(state_of_dispatcher(disp).claims.count({"job-1", 2}), 1u);
}

CAF_TEST(a batch that was not full waits for the next wake) {
  add_runnable(2);
  wake_with_slots_busy();
  add_runnable(3, "more-");
  auto claims = queue->claim_limits.size();

  expect((run_atom, job), from(disp).to(slots[0]));
  expect((done_atom, int, outcome), from(slots[0]).to(disp));
  run_except(slots);

  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims);
  CAF_CHECK_EQUAL(queue->runnable.size(), 3u);
}

CAF_TEST(a storm of wakes coalesces into one claim) {
  auto claims = queue->claim_limits.size();

  for (int i = 0; i < 1000; ++i)
    self->send(disp, wake_atom::value);
  sched.run();

  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
}

CAF_TEST(wakes during a claim retry fold into the retry) {
  queue->failing_claims = 1;
  self->send(disp, wake_atom::value);
  sched.run();
  auto claims = queue->claim_limits.size();
  add_runnable(1);

  for (int i = 0; i < 50; ++i)
    self->send(disp, wake_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims);

  advance_and_run(claim_retry_base);
  CAF_CHECK_EQUAL(queue->claim_limits.size(), claims + 1);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
}

CAF_TEST(every outcome reaches the status writer and is written once) {
  add_runnable(3);
  self->send(disp, wake_atom::value);
  sched.run();

  CAF_CHECK_EQUAL(queue->outcomes_written(), 3u);
  for (const auto& ref : refs({"job-1", "job-2", "job-3"}))
    CAF_CHECK_EQUAL(queue->times_written(ref), 1u);
  // The writer confirmed them: nothing is left to renew.
  CAF_CHECK(state_of_dispatcher(disp).claims.empty());
  CAF_CHECK(queue->held.empty());
}

CAF_TEST(the heartbeat renews the claims in flight every lease / 3) {
  add_runnable(2);
  wake_with_slots_busy();

  advance_and_run(cfg.lease / 3 - 1ms, slots);
  CAF_CHECK(queue->heartbeats.empty());
  advance_and_run(1ms, slots);
  CAF_REQUIRE_EQUAL(queue->heartbeats.size(), 1u);
  CAF_CHECK_EQUAL(queue->heartbeats[0], refs({"job-1", "job-2"}));

  // A lease reported lost is not renewed any more.
  queue->lose_on_heartbeat = refs({"job-1"});
  advance_and_run(cfg.lease / 3, slots);
  // ... and the slot that runs it is told to stop; the other runs on.
  for (const auto& slot : state_of_dispatcher(disp).slots) {
    if (!slot.running)
      continue;
    CAF_CHECK_EQUAL(slot.cancel->load(), slot.running->id == "job-1");
  }
  advance_and_run(cfg.lease / 3, slots);
  CAF_REQUIRE_EQUAL(queue->heartbeats.size(), 3u);
  CAF_CHECK_EQUAL(queue->heartbeats[1], refs({"job-1", "job-2"}));
  CAF_CHECK_EQUAL(queue->heartbeats[2], refs({"job-2"}));
}

CAF_TEST(a lease lost while the job runs is logged and the slot stopped) {
  add_runnable(1);
  wake_with_slots_busy();
  stderr_capture log;

  queue->lose_on_heartbeat = refs({"job-1"});
  advance_and_run(cfg.lease / 3, slots);

  CAF_CHECK(state_of_dispatcher(disp).slots[0].cancel->load());
  CAF_CHECK_NOT_EQUAL(
      log.text().find(
          "event=job.lost_lease job=job-1 attempt=1 seen_by=heartbeat"),
      std::string::npos);
}

// A job that finished but whose write is not confirmed yet is renewed
// (the write may take long); once written its row is no longer running,
// and the heartbeat's "not ours" is no lost lease: the status writer
// tells whether it was.
CAF_TEST(a heartbeat after the job finished does not call the lease lost) {
  add_runnable(1);
  self->send(disp, wake_atom::value);
  run_except({writer});
  CAF_REQUIRE(state_of_dispatcher(disp).claims.at({"job-1", 1}).result);
  stderr_capture log;

  queue->lose_on_heartbeat = refs({"job-1"});
  advance_and_run(cfg.lease / 3, {writer});
  CAF_REQUIRE_EQUAL(queue->heartbeats.size(), 1u);
  CAF_CHECK_EQUAL(queue->heartbeats[0], refs({"job-1"}));
  advance_and_run(cfg.lease / 3, {writer});

  CAF_CHECK_EQUAL(log.text().find("lost_lease"), std::string::npos);
  // Not renewed again; the writer still gets to write it.
  CAF_CHECK_EQUAL(queue->heartbeats.size(), 1u);
  sched.run();
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
}

CAF_TEST(an idle dispatcher renews nothing) {
  advance_and_run(cfg.lease);
  CAF_CHECK(queue->heartbeats.empty());
}

CAF_TEST(rescue runs before the first claim and then about every lease / 2) {
  // The start's own claim rescues first, before it claims.
  CAF_REQUIRE_EQUAL(queue->rescues.size(), 1u);
  CAF_CHECK_EQUAL(queue->rescues[0].count(), cfg.lease.count());
  CAF_CHECK_EQUAL(queue->claim_limits.size(), 1u);
  // Then lease / 2 with at most 10% jitter either way.
  advance_and_run(cfg.lease * 44 / 100);
  CAF_CHECK_EQUAL(queue->rescues.size(), 1u);
  advance_and_run(cfg.lease * 12 / 100);
  CAF_REQUIRE_EQUAL(queue->rescues.size(), 2u);
  CAF_CHECK_EQUAL(queue->rescues[1].count(), cfg.lease.count());
  advance_and_run(cfg.lease * 44 / 100);
  advance_and_run(cfg.lease * 12 / 100);
  CAF_CHECK_EQUAL(queue->rescues.size(), 3u);
  // Later claims do not rescue again.
  self->send(disp, wake_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(queue->rescues.size(), 3u);
}

CAF_TEST(a slot whose pipeline throws fails its job and is restarted) {
  pipe->crash_ids = {"job-1"};
  add_runnable(1);
  self->send(disp, wake_atom::value);
  sched.run();

  CAF_REQUIRE_EQUAL(queue->outcomes_written(), 1u);
  const auto& crashed = queue->writes[0][0];
  CAF_CHECK_EQUAL(crashed.job, (job_ref{"job-1", 1}));
  CAF_CHECK(crashed.failure == failure_kind::slot_crash);
  CAF_CHECK(is_retryable(crashed.failure));
  CAF_CHECK_EQUAL(crashed.error,
                  "pipeline slot crashed: backend segfaulted on job-1");
  CAF_CHECK_NOT_EQUAL(slot(disp, 0), slots[0]);

  // The new slot takes the next job.
  add_runnable(1, "next-");
  self->send(disp, wake_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(queue->times_written({"next-1", 1}), 1u);
  CAF_CHECK_EQUAL(pipe->runs.back().first, 0);
}

CAF_TEST(more slot crashes than the intensity stop the dispatcher) {
  pipe->crash_ids = {"job-1", "job-2", "job-3"};
  add_runnable(3);
  auto reason = watch(disp);
  self->send(disp, wake_atom::value);
  sched.run();

  CAF_REQUIRE(reason->has_value());
  CAF_CHECK_EQUAL(exit_status(**reason), 1);
  CAF_CHECK_EQUAL(describe(**reason),
                  "pipeline slots restarted more than 2 times in 60000 ms");
  // The third job still got its outcome before the dispatcher stopped.
  CAF_CHECK_EQUAL(queue->outcomes_written(), 3u);
}

CAF_TEST(a first start finds no orphans) {
  CAF_REQUIRE_EQUAL(queue->requeues.size(), 1u);
  CAF_CHECK(queue->requeues[0].keep.empty());
  CAF_CHECK(queue->requeues[0].moved.empty());
}

CAF_TEST(a restarted dispatcher gives back its predecessors claims first) {
  add_runnable(2);
  wake_with_slots_busy();
  add_runnable(1, "later-");
  std::vector<std::shared_ptr<std::atomic<bool>>> cancel;
  for (const auto& s : state_of_dispatcher(disp).slots)
    cancel.push_back(s.cancel);
  caf::anon_send_exit(disp, caf::exit_reason::kill);
  sched.run();
  // The old slots were told to stop what they ran.
  for (const auto& flag : cancel)
    CAF_CHECK(flag->load());

  auto next = spawn_dispatcher(writer);
  sched.run();

  CAF_REQUIRE_EQUAL(queue->requeues.size(), 2u);
  CAF_CHECK_EQUAL(queue->requeues[1].moved, refs({"job-1", "job-2"}));
  CAF_CHECK_EQUAL(queue->requeues[1].reason,
                  "worker's dispatcher restarted: the claim was abandoned");
  // Requeued before the claim: the claim took them, attempt counted.
  CAF_CHECK_EQUAL(queue->claim_limits.back(), 3);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 2}), 1u);
  CAF_CHECK_EQUAL(queue->times_written({"job-2", 2}), 1u);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 0u);
  CAF_CHECK_EQUAL(queue->times_written({"later-1", 1}), 1u);
  CAF_CHECK(queue->held.empty());
}

CAF_TEST(the orphan requeue is retried with the claim) {
  caf::anon_send_exit(disp, caf::exit_reason::kill);
  sched.run();
  queue->failing_requeues = 1;
  add_runnable(1);

  auto next = spawn_dispatcher(writer);
  sched.run();
  CAF_CHECK_EQUAL(queue->requeues.size(), 1u);
  CAF_CHECK_EQUAL(queue->outcomes_written(), 0u);

  advance_and_run(claim_retry_base);
  CAF_CHECK_EQUAL(queue->requeues.size(), 2u);
  CAF_CHECK_EQUAL(queue->times_written({"job-1", 1}), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
