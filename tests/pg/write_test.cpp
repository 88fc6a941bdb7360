#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg_connection.hpp"
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

// The statements that join ids with the running rows are planned on every
// call: a cached generic plan, built on statistics taken while nothing ran,
// looped over every running row for every id. The image write, the costly
// one to plan, keeps its cached plan once PostgreSQL has settled on one.
TEST_F(write, FencedJoinsArePlannedPerCallAndTheImageWriteIsCached) {
  add_jobs(40);
  exec(db.url(), "ANALYZE imagen.jobs");  // no row is running yet
  auto connection = std::make_unique<pg_connection>(settings());
  auto& session = *connection;
  pg_queue queue(std::move(connection), "worker-a", {}, 3);

  constexpr int rounds = 10;
  for (int i = 0; i < rounds; ++i) {
    auto jobs = queue.claim_batch(2);
    ASSERT_EQ(jobs.size(), 2u);
    EXPECT_TRUE(queue.heartbeat({ref_of(jobs[0]), ref_of(jobs[1])}).empty());
    auto results = queue.write_outcomes(
        {success(jobs[0], sample_image(jobs[0].id), 1),
         failure(jobs[1], failure_kind::cancelled, "shutdown")});
    EXPECT_EQ(results, (std::vector<write_result>{write_result::applied,
                                                  write_result::applied}));
  }
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'done'"),
            rounds);

  auto plans =
      session.query({"plans",
                     "SELECT name, generic_plans FROM pg_prepared_statements "
                     "WHERE name LIKE 'imagen%'"},
                    {});
  std::int64_t write_generic = -1;
  for (int r = 0; r < plans.size(); ++r) {
    std::string name(plans.text(r, 0));
    EXPECT_NE(name, "imagen_lock_fenced");
    EXPECT_NE(name, "imagen_heartbeat");
    EXPECT_NE(name, "imagen_release");
    if (name == "imagen_write_success")
      write_generic = plans.int64(r, 1);
  }
  EXPECT_GT(write_generic, 0) << "the image write is planned on every call";
}

}  // namespace
}  // namespace imagen::test
