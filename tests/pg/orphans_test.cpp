// requeue_orphans: a restarted dispatcher gives back the rows its worker
// still holds as running but no longer knows, without touching any other
// worker's rows, the claims it keeps, or a row a write just finished.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg_connection.hpp"
#include "core/pg_listener.hpp"
#include "tests/pg/pg_fixture.hpp"
#include "tests/support/process.hpp"

namespace imagen::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using orphans = pg_test;

constexpr const char* reason = "worker's dispatcher restarted";

TEST_F(orphans, OnlyThisWorkersUnknownRunningRowsGoBackWithTheAttempt) {
  add_jobs(5);
  auto mine = make_queue("worker-a");
  auto other = make_queue("worker-b");
  auto held = mine->claim_batch(3);
  ASSERT_EQ(held.size(), 3u);
  auto foreign = other->claim_batch(1);
  ASSERT_EQ(foreign.size(), 1u);
  const auto& orphan = held[0];
  const auto& kept = held[1];
  const auto& finished = held[2];
  ASSERT_EQ(
      mine->write_outcomes({success(finished, sample_image(finished.id), 1)}),
      std::vector<write_result>{write_result::applied});

  EXPECT_EQ(mine->requeue_orphans({ref_of(kept)}, reason), 1);

  EXPECT_EQ(column(orphan.id, "status"), "pending");
  EXPECT_EQ(column(orphan.id, "attempt"), "1");
  EXPECT_EQ(column(orphan.id, "error"), reason);
  EXPECT_EQ(column(orphan.id, "errors->0->>'message'"), reason);
  EXPECT_EQ(column(orphan.id, "errors->0->>'attempt'"), "1");
  EXPECT_EQ(column(orphan.id, "jsonb_array_length(errors)"), "1");
  EXPECT_TRUE(is_null(orphan.id, "claimed_by"));
  EXPECT_TRUE(is_null(orphan.id, "heartbeat_at"));
  EXPECT_TRUE(is_null(orphan.id, "completed_at"));
  EXPECT_EQ(column(orphan.id, "(run_after <= now())"), "true");

  EXPECT_EQ(column(kept.id, "status"), "running");
  EXPECT_EQ(column(kept.id, "claimed_by"), "worker-a");
  EXPECT_EQ(column(kept.id, "errors"), "[]");
  EXPECT_EQ(column(finished.id, "status"), "done");
  EXPECT_EQ(column(foreign[0].id, "status"), "running");
  EXPECT_EQ(column(foreign[0].id, "claimed_by"), "worker-b");
  EXPECT_EQ(column(foreign[0].id, "errors"), "[]");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs "
                  "WHERE status = 'pending' AND attempt = 0"),
            1);

  // The next claim runs it again as the next attempt; nothing is left.
  auto again = mine->claim_batch(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, orphan.id);
  EXPECT_EQ(again[0].attempt, 2);
  EXPECT_EQ(mine->requeue_orphans({ref_of(kept), ref_of(again[0])}, reason), 0);
}

TEST_F(orphans, AWorkerThatHoldsNothingMovesNothing) {
  add_jobs(2);
  auto other = make_queue("worker-b");
  ASSERT_EQ(other->claim_batch(1).size(), 1u);
  auto fresh = make_queue("worker-new");

  EXPECT_EQ(fresh->requeue_orphans({}, reason), 0);

  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs "
                  "WHERE status = 'running' AND claimed_by = 'worker-b'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'pending'"),
            1);
}

TEST_F(orphans, AnOrphanWithItsAttemptsUsedUpFails) {
  add_jobs(1);
  auto mine = make_queue("worker-a");
  auto j = mine->claim_batch(1).at(0);
  query(db.url(),
        "UPDATE imagen.jobs SET attempt = 3, max_attempts = 3 WHERE id = $1",
        {j.id});

  EXPECT_EQ(mine->requeue_orphans({}, reason), 1);

  EXPECT_EQ(column(j.id, "status"), "failed");
  EXPECT_EQ(column(j.id, "error"),
            std::string("abandoned after 3 attempts: ") + reason);
  EXPECT_EQ(column(j.id, "errors->0->>'attempt'"), "3");
  EXPECT_FALSE(is_null(j.id, "completed_at"));
  EXPECT_EQ(mine->claim_batch(1).size(), 0u);
}

TEST_F(orphans, ARequeuedRowWakesTheListeners) {
  add_jobs(1);
  auto mine = make_queue("worker-a");
  ASSERT_EQ(mine->claim_batch(1).size(), 1u);
  auto s = settings(seconds(2));
  s.application_name = "imagen-test-orphans";
  pg_notification_source source(s);
  ASSERT_EQ(source.wait(seconds(5)), wake_reason::reconnected);

  ASSERT_EQ(mine->requeue_orphans({}, reason), 1);

  EXPECT_EQ(source.wait(seconds(5)), wake_reason::notified);
}

TEST_F(orphans, ARowAWriteIsFinishingIsWaitedForAndLeftDone) {
  add_jobs(1);
  auto mine = make_queue("worker-a");
  auto j = mine->claim_batch(1).at(0);
  // A status writer in the middle of its transaction: the row is locked
  // and about to be done.
  pg_connection writer(settings());
  constexpr prepared_statement mark_done{
      "test_mark_done", "UPDATE imagen.jobs SET status = 'done' WHERE id = $1"};
  writer.run_script("begin", "BEGIN");
  writer.execute(mark_done, {j.id.c_str()});

  int moved = -1;
  std::thread restarted([&] {
    auto queue = make_queue("worker-a");
    moved = queue->requeue_orphans({}, reason);
  });
  bool blocked = wait_until(
      [&] {
        return count(
                   "SELECT count(*) FROM pg_stat_activity "
                   "WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock'") == 1;
      },
      seconds(5));
  writer.run_script("commit", "COMMIT");
  restarted.join();

  EXPECT_TRUE(blocked) << "the requeue did not wait for the row's lock";
  EXPECT_EQ(moved, 0);
  EXPECT_EQ(column(j.id, "status"), "done");
  EXPECT_EQ(column(j.id, "errors"), "[]");
}

}  // namespace
}  // namespace imagen::test
