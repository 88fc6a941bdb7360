// The status writer: outcomes that arrive together are written in one
// call, a failed write is retried until it succeeds and then written
// exactly once, a lost lease is logged and dropped, cancellations are
// released, every sender hears which of its claims are finished, and the
// scratch directory is swept every interval.
#define CAF_SUITE status_writer
#include <stdexcept>

#include "tests/actors/fixture.hpp"

using namespace imagen;
using namespace imagen::testing;

namespace {

struct writer_fixture : actor_fixture {
  caf::actor writer;
  caf::actor sender;
  std::shared_ptr<std::vector<std::vector<job_ref>>> confirmed =
      std::make_shared<std::vector<std::vector<job_ref>>>();

  writer_fixture() {
    writer = spawn_writer();
    sender = keep(sys.spawn(written_recorder, confirmed));
    sched.run();
  }

  /// Sends the outcome of `id` to the writer as the recorder, like a
  /// dispatcher would.
  outcome send_success(const std::string& id) {
    auto j = make_job(id);
    artifact image;
    image.path = "/nonexistent/" + id + ".png";
    auto o = success(j, image, 5);
    caf::send_as(sender, writer, outcome_atom::value, o, j.max_attempts);
    return o;
  }

  outcome send_failure(const std::string& id, failure_kind kind) {
    auto j = make_job(id);
    auto o = failure(j, kind, "stopped");
    caf::send_as(sender, writer, outcome_atom::value, o, j.max_attempts);
    return o;
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(status_writer_tests, writer_fixture)

CAF_TEST(outcomes that arrive together are written in one call) {
  auto a = send_success("job-1");
  auto b = send_failure("job-2", failure_kind::backend);
  auto c = send_success("job-3");

  expect((outcome_atom, outcome, int), from(sender).to(writer).with(_, a, 3));
  expect((outcome_atom, outcome, int), from(sender).to(writer).with(_, b, 3));
  expect((outcome_atom, outcome, int), from(sender).to(writer).with(_, c, 3));
  expect((flush_atom), from(writer).to(writer));
  expect((written_atom, std::vector<job_ref>),
         from(writer).to(sender).with(
             _, std::vector<job_ref>{a.job, b.job, c.job}));

  CAF_CHECK_EQUAL(queue->write_calls, 1);
  CAF_REQUIRE_EQUAL(queue->writes.size(), 1u);
  CAF_CHECK_EQUAL(queue->writes[0], (std::vector<outcome>{a, b, c}));
}

CAF_TEST(an outcome after a write starts the next batch) {
  send_success("job-1");
  sched.run();
  send_success("job-2");
  send_success("job-3");
  sched.run();

  CAF_CHECK_EQUAL(queue->write_calls, 2);
  CAF_REQUIRE_EQUAL(queue->writes.size(), 2u);
  CAF_CHECK_EQUAL(queue->writes[0].size(), 1u);
  CAF_CHECK_EQUAL(queue->writes[1].size(), 2u);
  CAF_CHECK_EQUAL(confirmed->size(), 2u);
}

CAF_TEST(a failed write is retried after backoff and written exactly once) {
  queue->failing_writes = 2;
  auto o = send_success("job-1");
  sched.run();
  CAF_CHECK_EQUAL(queue->write_calls, 1);
  CAF_CHECK(confirmed->empty());

  // 100 ms, then 200 ms.
  advance_and_run(write_retry_base - 1ms);
  CAF_CHECK_EQUAL(queue->write_calls, 1);
  advance_and_run(1ms);
  CAF_CHECK_EQUAL(queue->write_calls, 2);
  advance_and_run(write_retry_base * 2 - 1ms);
  CAF_CHECK_EQUAL(queue->write_calls, 2);
  advance_and_run(1ms);
  CAF_CHECK_EQUAL(queue->write_calls, 3);

  CAF_CHECK_EQUAL(queue->times_written(o.job), 1u);
  CAF_CHECK_EQUAL(*confirmed, (std::vector<std::vector<job_ref>>{{o.job}}));
  // Nothing is left to write: no more calls, ever.
  advance_and_run(1h);
  CAF_CHECK_EQUAL(queue->write_calls, 3);
}

CAF_TEST(an outcome sent twice is written once) {
  queue->failing_writes = 1;
  auto o = send_success("job-1");
  sched.run();
  // A replaced writer's dispatcher re-sends what it does not know written.
  send_success("job-1");
  sched.run();
  advance_and_run(write_retry_base);

  CAF_CHECK_EQUAL(queue->times_written(o.job), 1u);
}

CAF_TEST(a lost lease is logged and not retried) {
  queue->foreign_rows = {"job-1"};
  stderr_capture log;
  auto o = send_success("job-1");
  sched.run();
  advance_and_run(1h);
  auto text = log.text();

  CAF_CHECK_EQUAL(queue->write_calls, 1);
  CAF_CHECK_NOT_EQUAL(text.find("event=job.lost_lease job=job-1 attempt=1"),
                      std::string::npos);
  CAF_CHECK_EQUAL(text.find("event=job.done"), std::string::npos);
  // The sender stops renewing it: for this worker the claim is over.
  CAF_CHECK_EQUAL(*confirmed, (std::vector<std::vector<job_ref>>{{o.job}}));
}

CAF_TEST(a cancelled outcome is released and not written) {
  auto cancelled = send_failure("job-1", failure_kind::cancelled);
  auto done = send_success("job-2");
  sched.run();

  CAF_REQUIRE_EQUAL(queue->releases.size(), 1u);
  CAF_CHECK_EQUAL(queue->releases[0], (std::vector<job_ref>{cancelled.job}));
  CAF_CHECK_EQUAL(queue->outcomes_written(), 1u);
  CAF_CHECK_EQUAL(queue->times_written(done.job), 1u);
  CAF_CHECK_EQUAL(queue->times_written(cancelled.job), 0u);
  CAF_CHECK_EQUAL(confirmed->size(), 2u);
}

CAF_TEST(the scratch directory is swept every interval) {
  auto sweeps = std::make_shared<int>(0);
  spawn_writer([sweeps] { ++*sweeps; });
  sched.run();
  CAF_CHECK_EQUAL(*sweeps, 0);
  advance_and_run(scratch_sweep_interval - 1ms);
  CAF_CHECK_EQUAL(*sweeps, 0);
  advance_and_run(1ms);
  CAF_CHECK_EQUAL(*sweeps, 1);
  advance_and_run(scratch_sweep_interval);
  CAF_CHECK_EQUAL(*sweeps, 2);
}

CAF_TEST(a sweep that throws is logged and the next one still comes) {
  auto sweeps = std::make_shared<int>(0);
  auto swept = spawn_writer([sweeps] {
    if (++*sweeps == 1)
      throw std::runtime_error("scratch directory vanished");
  });
  sched.run();
  advance_and_run(scratch_sweep_interval);
  CAF_CHECK_EQUAL(*sweeps, 1);
  advance_and_run(scratch_sweep_interval);
  CAF_CHECK_EQUAL(*sweeps, 2);
  // It still writes outcomes.
  auto j = make_job("job-9");
  auto o = failure(j, failure_kind::backend, "stopped");
  caf::send_as(sender, swept, outcome_atom::value, o, j.max_attempts);
  sched.run();
  CAF_CHECK_EQUAL(queue->times_written(o.job), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
