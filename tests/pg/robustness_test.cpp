// What a tester broke: an outcome the database refuses must not hold back
// the others, a success written twice stays applied, a row set to running
// by hand is rescued, and a far `run_after` does not hold a drain.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/pg/pg_fixture.hpp"

namespace imagen::test {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using robustness = pg_test;

TEST_F(robustness, ARefusedOutcomeIsRecordedAsAFailureAndTheOthersApply) {
  add_jobs(3);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(3);
  ASSERT_EQ(jobs.size(), 3u);
  // A path with a Latin-1 byte: PostgreSQL refuses it in a text column.
  auto bad = sample_image(jobs[1].id);
  bad.path = "/var/images/caf\xe9/" + jobs[1].id + ".png";

  auto results = queue->write_outcomes(
      {success(jobs[0], sample_image(jobs[0].id), 1), success(jobs[1], bad, 1),
       failure(jobs[2], failure_kind::invalid_input, "width -8 is negative")});

  EXPECT_EQ(results, (std::vector<write_result>{write_result::applied,
                                                write_result::applied,
                                                write_result::applied}));
  EXPECT_EQ(column(jobs[0].id, "status"), "done");
  EXPECT_EQ(column(jobs[2].id, "status"), "failed");
  // Retryable, so it waits for its next attempt with the reason recorded.
  EXPECT_EQ(column(jobs[1].id, "status"), "pending");
  auto error = column(jobs[1].id, "error");
  EXPECT_NE(error.find("cannot record the image"), std::string::npos) << error;
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images WHERE job_id = $1",
                  {jobs[1].id}),
            0);
}

TEST_F(robustness, AFailureThatCannotBeRecordedAsIsEndsFailedInAscii) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);

  auto results = queue->write_outcomes(
      {failure(j, failure_kind::backend, "stderr: bad bytes \xff\xfe here")});

  EXPECT_EQ(results, std::vector<write_result>{write_result::applied});
  EXPECT_EQ(column(j.id, "status"), "failed");
  auto error = column(j.id, "error");
  EXPECT_NE(error.find("cannot record the outcome"), std::string::npos)
      << error;
  EXPECT_NE(error.find("\\xff"), std::string::npos) << error;
}

TEST_F(robustness, ASuccessWrittenAgainAfterItsCommitStaysApplied) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);
  auto done = success(j, sample_image(j.id), 1);
  ASSERT_EQ(queue->write_outcomes({done}),
            std::vector<write_result>{write_result::applied});

  // The answer to the first COMMIT was lost; the writer tries again.
  EXPECT_EQ(queue->write_outcomes({done}),
            std::vector<write_result>{write_result::applied});

  // Another attempt's image for the same job is still a lost lease.
  auto other = j;
  other.attempt = j.attempt + 1;
  auto image = sample_image(j.id);
  image.path = "/var/images/other.png";
  EXPECT_EQ(queue->write_outcomes({success(other, image, 1)}),
            std::vector<write_result>{write_result::lost_lease});
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images"), 1);
}

TEST_F(robustness, ARowSetRunningByHandWithoutALeaseIsRescued) {
  auto ids = add_jobs(1);
  query(db.url(),
        "UPDATE imagen.jobs SET status = 'running', heartbeat_at = NULL, "
        "claimed_by = NULL WHERE id = $1",
        {ids[0]});

  EXPECT_EQ(make_queue()->rescue_expired(seconds(60)), 1);

  EXPECT_EQ(column(ids[0], "status"), "pending");
}

TEST_F(robustness, NextPendingIgnoresRowsDueBeyondTheRetryCap) {
  auto ids = add_jobs(2);
  retry_policy retry;
  retry.cap = hours(1);
  auto queue = make_queue("worker-a", retry);
  query(db.url(), "UPDATE imagen.jobs SET run_after = 'infinity' WHERE id = $1",
        {ids[0]});
  query(db.url(),
        "UPDATE imagen.jobs SET run_after = now() + interval '2 hours' "
        "WHERE id = $1",
        {ids[1]});

  EXPECT_FALSE(queue->next_pending_delay().has_value());

  query(db.url(),
        "UPDATE imagen.jobs SET run_after = now() + interval '30 seconds' "
        "WHERE id = $1",
        {ids[1]});
  auto due = queue->next_pending_delay();
  ASSERT_TRUE(due.has_value());
  EXPECT_GT(*due, seconds(20));
  EXPECT_LE(*due, seconds(30));

  query(db.url(),
        "UPDATE imagen.jobs SET run_after = '-infinity' WHERE id = $1",
        {ids[1]});
  EXPECT_EQ(queue->next_pending_delay(), milliseconds(0));
}

}  // namespace
}  // namespace imagen::test
