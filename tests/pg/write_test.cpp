#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg_connection.hpp"
#include "core/sql.hpp"
#include "tests/pg/pg_fixture.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;
using write = pg_test;

TEST_F(write, SuccessRegistersTheImageAndMarksTheJobDone) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);

  auto results = queue->write_outcomes({success(j, sample_image(j.id), 15)});

  EXPECT_EQ(results, std::vector<write_result>{write_result::applied});
  EXPECT_EQ(column(j.id, "status"), "done");
  EXPECT_FALSE(is_null(j.id, "completed_at"));
  EXPECT_TRUE(is_null(j.id, "error"));
  auto image = query(db.url(),
                     "SELECT i.id::text, i.uri, i.sha256, i.bytes::text, "
                     "i.width::text, i.height::text, i.mime, i.owner_user_id "
                     "FROM imagen.images AS i WHERE i.job_id = $1",
                     {j.id});
  ASSERT_EQ(image.size(), 1u);
  EXPECT_EQ(image[0][0], column(j.id, "image_id"));
  EXPECT_EQ(image[0][1], "file:///var/images/" + j.id + ".png");
  EXPECT_EQ(image[0][2], std::string(64, 'a'));
  EXPECT_EQ(image[0][3], "1234");
  EXPECT_EQ(image[0][4], "64");
  EXPECT_EQ(image[0][5], "48");
  EXPECT_EQ(image[0][6], "image/png");
  EXPECT_EQ(image[0][7], "cli");
}

TEST_F(write, AWrongAttemptOrWorkerChangesNothing) {
  add_jobs(1);
  auto mine = make_queue("worker-a");
  auto other = make_queue("worker-b");
  auto j = mine->claim_batch(1).at(0);
  auto stale = j;
  stale.attempt = j.attempt + 1;

  auto wrong_attempt =
      mine->write_outcomes({success(stale, sample_image(j.id), 1)});
  auto wrong_worker =
      other->write_outcomes({failure(j, failure_kind::invalid_input, "bad")});

  EXPECT_EQ(wrong_attempt, std::vector<write_result>{write_result::lost_lease});
  EXPECT_EQ(wrong_worker, std::vector<write_result>{write_result::lost_lease});
  EXPECT_EQ(column(j.id, "status"), "running");
  EXPECT_EQ(column(j.id, "claimed_by"), "worker-a");
  EXPECT_EQ(column(j.id, "errors"), "[]");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images"), 0);
}

TEST_F(write, OneBatchAppliesWhatIsOursAndReportsTheRest) {
  add_jobs(3);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(3);
  ASSERT_EQ(jobs.size(), 3u);
  auto lost = jobs[1];
  lost.attempt = 9;

  auto results = queue->write_outcomes(
      {success(jobs[0], sample_image(jobs[0].id), 1),
       success(lost, sample_image(lost.id), 1),
       failure(jobs[2], failure_kind::invalid_input, "width -8 is negative")});

  EXPECT_EQ(results, (std::vector<write_result>{write_result::applied,
                                                write_result::lost_lease,
                                                write_result::applied}));
  EXPECT_EQ(column(jobs[0].id, "status"), "done");
  EXPECT_EQ(column(jobs[1].id, "status"), "running");
  EXPECT_EQ(column(jobs[2].id, "status"), "failed");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images"), 1);
}

// The status writer never sends a job twice in one batch, but if it did,
// only the first outcome may count: in one kind or across kinds.
TEST_F(write, AJobTwiceInOneBatchIsWrittenOnce) {
  add_jobs(2);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(2);
  ASSERT_EQ(jobs.size(), 2u);
  auto image = [](const job& j, const char* name) {
    auto a = sample_image(j.id);
    a.path = std::string("/var/images/") + name + ".png";
    return a;
  };

  auto results = queue->write_outcomes(
      {success(jobs[0], image(jobs[0], "first"), 1),
       success(jobs[0], image(jobs[0], "second"), 1),
       failure(jobs[1], failure_kind::invalid_input, "width -8 is negative"),
       success(jobs[1], image(jobs[1], "late"), 1)});

  EXPECT_EQ(results, (std::vector<write_result>{
                         write_result::applied, write_result::lost_lease,
                         write_result::applied, write_result::lost_lease}));
  EXPECT_EQ(column(jobs[0].id, "status"), "done");
  EXPECT_EQ(column(jobs[1].id, "status"), "failed");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images "
                  "WHERE uri = 'file:///var/images/first.png'"),
            1);
}

TEST_F(write, RetryableFailureWaitsThenFailsWhenAttemptsAreUsedUp) {
  auto id = scalar(db.url(),
                   "INSERT INTO imagen.jobs (owner_user_id, prompt, "
                   "max_attempts) VALUES ('u', 'p', 2) RETURNING id");
  retry_policy retry;
  retry.base = seconds(60);
  retry.cap = seconds(600);
  auto queue = make_queue("worker-a", retry);

  auto first = queue->claim_batch(1).at(0);
  queue->write_outcomes({failure(first, failure_kind::backend, "sd exit 1")});

  EXPECT_EQ(column(id, "status"), "pending");
  EXPECT_EQ(column(id, "error"), "sd exit 1");
  EXPECT_TRUE(is_null(id, "claimed_by"));
  EXPECT_TRUE(is_null(id, "completed_at"));
  // base 60 s for attempt 1, jitter in [0.75, 1.25].
  auto delay = std::stod(column(id, "extract(epoch FROM run_after - now())"));
  EXPECT_GT(delay, 44.0);
  EXPECT_LT(delay, 76.0);
  EXPECT_EQ(column(id, "jsonb_array_length(errors)"), "1");
  EXPECT_EQ(column(id, "errors->0->>'attempt'"), "1");
  EXPECT_EQ(column(id, "errors->0->>'message'"), "sd exit 1");
  EXPECT_FALSE(is_null(id, "errors->0->>'at'"));
  EXPECT_TRUE(queue->claim_batch(1).empty()) << "claimed before run_after";

  exec(db.url(), "UPDATE imagen.jobs SET run_after = now()");
  auto second = queue->claim_batch(1).at(0);
  EXPECT_EQ(second.attempt, 2);
  queue->write_outcomes({failure(second, failure_kind::timeout, "too slow")});

  EXPECT_EQ(column(id, "status"), "failed");
  EXPECT_EQ(column(id, "error"), "too slow");
  EXPECT_FALSE(is_null(id, "completed_at"));
  EXPECT_EQ(column(id, "jsonb_array_length(errors)"), "2");
  EXPECT_EQ(column(id, "errors->1->>'attempt'"), "2");
}

TEST_F(write, BackoffDoublesPerAttemptUpToTheCap) {
  auto id = scalar(db.url(),
                   "INSERT INTO imagen.jobs (owner_user_id, prompt, attempt, "
                   "max_attempts) VALUES ('u', 'p', 3, 10) RETURNING id");
  retry_policy retry;
  retry.base = seconds(10);
  retry.cap = seconds(30);
  auto queue = make_queue("worker-a", retry);
  auto j = queue->claim_batch(1).at(0);
  ASSERT_EQ(j.attempt, 4);

  queue->write_outcomes({failure(j, failure_kind::storage, "disk full")});

  // 10 s * 2^3 = 80 s, capped at 30 s, then jitter.
  auto delay = std::stod(column(id, "extract(epoch FROM run_after - now())"));
  EXPECT_GT(delay, 22.0);
  EXPECT_LT(delay, 38.0);
}

TEST_F(write, InvalidInputFailsAtOnce) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);

  queue->write_outcomes(
      {failure(j, failure_kind::invalid_input, "width 5000 exceeds 4096")});

  EXPECT_EQ(column(j.id, "status"), "failed");
  EXPECT_EQ(column(j.id, "attempt"), "1");
  EXPECT_EQ(column(j.id, "error"), "width 5000 exceeds 4096");
  EXPECT_EQ(column(j.id, "jsonb_array_length(errors)"), "1");
}

TEST_F(write, SuccessWithoutAnImageIsAFailure) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);
  outcome empty;
  empty.job = ref_of(j);

  EXPECT_EQ(queue->write_outcomes({empty}),
            std::vector<write_result>{write_result::applied});

  EXPECT_EQ(column(j.id, "status"), "pending");
  EXPECT_EQ(column(j.id, "error"), "pipeline produced no image");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images"), 0);
}

TEST_F(write, HeartbeatRenewsOursAndReportsTheRest) {
  add_jobs(2);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(2);
  ASSERT_EQ(jobs.size(), 2u);
  exec(db.url(),
       "UPDATE imagen.jobs SET heartbeat_at = now() - interval '1 hour'");
  job_ref gone{jobs[1].id, jobs[1].attempt + 1};

  auto lost = queue->heartbeat({ref_of(jobs[0]), gone, ref_of(jobs[1])});

  EXPECT_EQ(lost, std::vector<job_ref>{gone});
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs "
                  "WHERE heartbeat_at > now() - interval '1 minute'"),
            2);
  EXPECT_TRUE(queue->heartbeat({}).empty());
}

TEST_F(write, RescueMovesOnlyExpiredLeases) {
  auto ids = add_jobs(3);
  auto queue = make_queue("worker-dead");
  auto jobs = queue->claim_batch(3);
  ASSERT_EQ(jobs.size(), 3u);
  const auto& expired = jobs[0];
  const auto& live = jobs[1];
  const auto& exhausted = jobs[2];
  query(db.url(),
        "UPDATE imagen.jobs SET heartbeat_at = now() - interval '2 minutes' "
        "WHERE id = ANY($1::uuid[])",
        {"{" + expired.id + "," + exhausted.id + "}"});
  query(db.url(),
        "UPDATE imagen.jobs SET attempt = 3, max_attempts = 3 WHERE id = $1",
        {exhausted.id});
  auto rescuer = make_queue("worker-alive");

  EXPECT_EQ(rescuer->rescue_expired(seconds(60)), 2);

  EXPECT_EQ(column(expired.id, "status"), "pending");
  EXPECT_EQ(column(expired.id, "error"),
            "lease expired: worker worker-dead stopped renewing");
  EXPECT_TRUE(is_null(expired.id, "claimed_by"));
  EXPECT_EQ(column(expired.id, "(run_after <= now())"), "true");
  EXPECT_EQ(column(expired.id, "errors->0->>'message'"),
            "lease expired: worker worker-dead stopped renewing");

  EXPECT_EQ(column(live.id, "status"), "running");
  EXPECT_EQ(column(live.id, "claimed_by"), "worker-dead");
  EXPECT_EQ(column(live.id, "errors"), "[]");

  EXPECT_EQ(column(exhausted.id, "status"), "failed");
  EXPECT_EQ(
      column(exhausted.id, "error").rfind("abandoned after 3 attempts", 0), 0u);
  EXPECT_FALSE(is_null(exhausted.id, "completed_at"));

  EXPECT_EQ(rescuer->rescue_expired(seconds(60)), 0);
}

TEST_F(write, ReleaseGivesTheAttemptBack) {
  add_jobs(2);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(2);
  ASSERT_EQ(jobs.size(), 2u);
  job_ref stale{jobs[1].id, 5};

  EXPECT_EQ(queue->release({ref_of(jobs[0]), stale}), 1);

  EXPECT_EQ(column(jobs[0].id, "status"), "pending");
  EXPECT_EQ(column(jobs[0].id, "attempt"), "0");
  EXPECT_TRUE(is_null(jobs[0].id, "claimed_by"));
  EXPECT_TRUE(is_null(jobs[0].id, "heartbeat_at"));
  EXPECT_EQ(column(jobs[1].id, "status"), "running");

  auto again = queue->claim_batch(1).at(0);
  EXPECT_EQ(again.id, jobs[0].id);
  EXPECT_EQ(again.attempt, 1);
}

TEST_F(write, ACancelledOutcomeIsReleased) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);

  EXPECT_EQ(queue->write_outcomes(
                {failure(j, failure_kind::cancelled, "shutting down")}),
            std::vector<write_result>{write_result::applied});

  EXPECT_EQ(column(j.id, "status"), "pending");
  EXPECT_EQ(column(j.id, "attempt"), "0");
  EXPECT_EQ(column(j.id, "errors"), "[]");
}

// A write whose COMMIT went through but whose answer was lost is tried
// again (status_writer retries a transient error). The row is no longer
// running, so the fence refuses the second try; the failures it finds in
// the row's errors (this attempt, this message) are still reported as
// applied, not as lost leases. Someone else's entry for the job does not
// count, and a cancellation leaves nothing to find.
TEST_F(write, AFailureWrittenBeforeARetryIsReportedApplied) {
  add_jobs(4);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(4);
  ASSERT_EQ(jobs.size(), 4u);
  std::vector<outcome> batch{
      failure(jobs[0], failure_kind::backend, "sd exit 1"),
      failure(jobs[1], failure_kind::invalid_input, "width -8 is negative"),
      failure(jobs[2], failure_kind::cancelled, "shutting down")};
  const std::vector<write_result> applied(3, write_result::applied);
  ASSERT_EQ(queue->write_outcomes(batch), applied);

  EXPECT_EQ(
      queue->write_outcomes(batch),
      (std::vector<write_result>{write_result::applied, write_result::applied,
                                 write_result::lost_lease}));
  EXPECT_EQ(column(jobs[0].id, "jsonb_array_length(errors)"), "1");
  EXPECT_EQ(column(jobs[1].id, "jsonb_array_length(errors)"), "1");

  // Rescued from under this worker: the row's entry has another message.
  query(db.url(),
        "UPDATE imagen.jobs SET status = 'pending', claimed_by = NULL, "
        "errors = errors || jsonb_build_array(jsonb_build_object("
        "'attempt', attempt, 'message', 'lease expired')) WHERE id = $1",
        {jobs[3].id});
  EXPECT_EQ(queue->write_outcomes(
                {failure(jobs[3], failure_kind::backend, "sd exit 1")}),
            std::vector<write_result>{write_result::lost_lease});
  // The same message, but an earlier attempt's.
  auto late = jobs[0];
  late.attempt += 1;
  EXPECT_EQ(queue->write_outcomes(
                {failure(late, failure_kind::backend, "sd exit 1")}),
            std::vector<write_result>{write_result::lost_lease});
}

// The foreign-key check of each job marked done runs on a plan the
// session caches. Made while imagen.images was analyzed empty, it was a
// sequential scan and stayed one as the table grew: every write got
// slower. A queue's sessions turn sequential scans off, after every
// connect, so the check uses the primary key.
TEST_F(write, ForeignKeyChecksUseTheIndexAfterImagesWasAnalyzedEmpty) {
  add_jobs(20);
  exec(db.url(), "ANALYZE imagen.images");  // empty
  auto s = settings();
  s.application_name = "imagen-test-fk";
  auto connection = std::make_unique<pg_connection>(s);
  auto& session = *connection;
  pg_queue queue(std::move(connection), "worker-a", {}, 3);
  auto check_plan = [&] {
    auto rows = session.query(
        {"explain",
         "EXPLAIN SELECT 1 FROM ONLY imagen.images x WHERE id = $1 "
         "FOR KEY SHARE OF x"},
        {"00000000-0000-0000-0000-000000000001"});
    std::string plan;
    for (int r = 0; r < rows.size(); ++r) {
      plan += std::string(rows.text(r, 0)) + "\n";
    }
    return plan;
  };

  for (int i = 0; i < 8; ++i) {
    auto j = queue.claim_batch(1).at(0);
    ASSERT_EQ(queue.write_outcomes({success(j, sample_image(j.id), 1)}),
              std::vector<write_result>{write_result::applied});
  }
  auto plan = check_plan();
  EXPECT_NE(plan.find("images_pkey"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;

  // A new session after a lost connection gets the same setting.
  query(test_admin_url(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'imagen-test-fk'");
  EXPECT_THROW(queue.claim_batch(1), queue_error);
  ASSERT_EQ(queue.claim_batch(1).size(), 1u);
  plan = check_plan();
  EXPECT_NE(plan.find("images_pkey"), std::string::npos) << plan;
}

// Every fenced statement runs on a cached plan, and that plan must reach
// the rows through the primary key whatever the statistics say. On a
// generic plan built from statistics taken while no row ran, the first
// fenced join scanned the lease index (every running row) once per id.
TEST_F(write, FencedStatementsReachRowsByPrimaryKeyOnAnyPlan) {
  add_jobs(200);
  exec(db.url(), "ANALYZE imagen.jobs");  // no row is running yet
  ASSERT_EQ(make_queue("worker-a")->claim_batch(150).size(), 150u);
  auto id = scalar(db.url(), "SELECT id FROM imagen.jobs LIMIT 1");

  pg_connection session(settings());
  session.run_script("generic", "SET plan_cache_mode = force_generic_plan");
  struct fenced {
    const prepared_statement& statement;
    std::vector<const char*> nothing;  // prepares it, writes no row
    std::string args;                  // for EXPLAIN EXECUTE
  };
  const std::string ref = "('worker-a', '{" + id + "}', '{1}'";
  const std::vector<fenced> statements = {
      {sql::lock_fenced, {"worker-a", "{}", "{}"}, ref + ")"},
      {sql::write_success,
       {"worker-a", "{}", "{}", "{}", "{}", "{}", "{}", "{}", "{}"},
       ref +
           ", '{file:///x.png}', '{ab}', '{1}', '{8}', '{8}', '{image/png}')"},
      {sql::write_failures,
       {"worker-a", "{}", "{}", "{}", "{}", "3", "1000", "60000"},
       ref + ", '{boom}', '{t}', 3, 1000, 60000)"},
      {sql::release, {"worker-a", "{}", "{}"}, ref + ")"},
      {sql::heartbeat, {"worker-a", "{}", "{}"}, ref + ")"},
  };
  for (const auto& f : statements) {
    session.execute(f.statement, f.nothing.data(),
                    static_cast<int>(f.nothing.size()));
    auto sql = "EXPLAIN EXECUTE " + std::string(f.statement.name) + f.args;
    auto rows = session.query({"explain", sql.c_str()}, {});
    std::string plan;
    for (int r = 0; r < rows.size(); ++r) {
      plan += std::string(rows.text(r, 0)) + "\n";
    }
    EXPECT_EQ(plan.find("jobs_lease_idx"), std::string::npos)
        << f.statement.name << ":\n"
        << plan;
    EXPECT_NE(plan.find("jobs_pkey"), std::string::npos)
        << f.statement.name << ":\n"
        << plan;
  }
}

}  // namespace
}  // namespace imagen::test
