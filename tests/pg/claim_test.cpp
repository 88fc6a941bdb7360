#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg_connection.hpp"
#include "core/sql.hpp"
#include "tests/pg/pg_fixture.hpp"

namespace imagen::test {
namespace {

using claim = pg_test;

TEST_F(claim, FourWorkersClaimEveryRowExactlyOnce) {
  constexpr int rows = 2000;
  add_jobs(rows);

  std::vector<std::vector<std::string>> claimed(4);
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      auto queue = make_queue("worker-" + std::to_string(w));
      // SKIP LOCKED may answer empty while the last rows are being claimed
      // by another worker; those rows are then that worker's.
      for (auto batch = queue->claim_batch(25); !batch.empty();
           batch = queue->claim_batch(25)) {
        for (const auto& j : batch) {
          claimed[static_cast<std::size_t>(w)].push_back(j.id);
        }
      }
    });
  }
  for (auto& t : workers) {
    t.join();
  }

  std::multiset<std::string> all;
  for (const auto& ids : claimed) {
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(rows));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(),
            static_cast<std::size_t>(rows));
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs "
                  "WHERE status = 'running' AND attempt = 1"),
            rows);
  for (const auto& ids : claimed) {
    EXPECT_FALSE(ids.empty()) << "a worker got nothing: no concurrency";
  }
}

TEST_F(claim, NeverReturnsMoreThanTheLimit) {
  add_jobs(10);
  auto queue = make_queue();

  EXPECT_EQ(queue->claim_batch(3).size(), 3u);
  EXPECT_EQ(queue->claim_batch(0).size(), 0u);
  EXPECT_EQ(queue->claim_batch(100).size(), 7u);
  EXPECT_EQ(queue->claim_batch(100).size(), 0u);
}

// A claim between two jobs is on the slot's critical path. Once the
// table has statistics, a LIMIT given as a parameter makes PostgreSQL plan
// every execution afresh; with the limit in the text the cached generic
// plan is used from the sixth execution on.
TEST_F(claim, RepeatedClaimsUseTheCachedPlan) {
  add_jobs(2000);
  exec(db.url(), "ANALYZE imagen.jobs");
  pg_connection connection(settings());
  sql::claim_statements claims("worker-a", 3);

  constexpr int claims_made = 12;
  for (int i = 0; i < claims_made; ++i) {
    auto rows = connection.execute(claims.for_limit(1), {});
    ASSERT_EQ(rows.size(), 1);
  }

  auto plans = connection.query(
      {"plans",
       "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
       "WHERE name = $1"},
      {claims.for_limit(1).name});
  ASSERT_EQ(plans.size(), 1);
  // Not even the first runs are planned afresh: the claim takes no
  // parameters, so its one plan is made on the first run and kept.
  EXPECT_EQ(plans.int64(0, 0), claims_made) << "claims planned afresh";
  EXPECT_EQ(plans.int64(0, 1), 0);
  EXPECT_STRNE(claims.for_limit(1).name, claims.for_limit(2).name);
}

// A row whose attempt counter cannot go up (written by hand) once failed
// every claim that reached it, for every worker: "integer out of range".
// It is failed with a message and the claim goes on with the other rows.
TEST_F(claim, ARowWhoseAttemptCannotGrowIsFailedNotClaimed) {
  add_jobs(2);
  auto stuck = scalar(db.url(),
                      "INSERT INTO imagen.jobs (owner_user_id, prompt, "
                      "attempt, priority) VALUES ('u', 'p', 2147483647, 9) "
                      "RETURNING id");
  auto queue = make_queue();

  auto jobs = queue->claim_batch(3);

  ASSERT_EQ(jobs.size(), 2u);
  for (const auto& j : jobs) {
    EXPECT_NE(j.id, stuck);
    EXPECT_EQ(j.attempt, 1);
  }
  EXPECT_EQ(column(stuck, "status"), "failed");
  EXPECT_EQ(column(stuck, "attempt"), "2147483647");
  EXPECT_NE(column(stuck, "error").find("attempt counter at its limit"),
            std::string::npos);
  EXPECT_FALSE(is_null(stuck, "completed_at"));
  EXPECT_TRUE(is_null(stuck, "heartbeat_at"));
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'running'"),
            2);
}

// The worker id and the default max_attempts are written into the
// claim's text; a quote, a backslash or a marker of the text in the id
// must reach claimed_by as it is, and a row without max_attempts gets the
// default.
TEST_F(claim, TheWorkerIdIsQuotedIntoTheClaim) {
  add_jobs(2);
  exec(db.url(), "UPDATE imagen.jobs SET max_attempts = NULL");
  const std::string odd =
      R"(host{max_attempts}{limit}'); DROP TABLE imagen.jobs; --\x:1:ab)";
  pg_queue queue(settings(), odd, {}, 7);

  auto jobs = queue.claim_batch(2);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].max_attempts, 7);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE claimed_by = " +
                  sql::literal(odd)),
            2);
  EXPECT_EQ(scalar(db.url(), "SELECT DISTINCT claimed_by FROM imagen.jobs"),
            odd);
  EXPECT_THROW(sql::literal(std::string("a\0b", 3)), std::invalid_argument);
}

// Pools above claim_statements::cached_limits slots claim with a text
// planned on every call; it must still honour its limit.
TEST_F(claim, LargeClaimsKeepTheirLimit) {
  add_jobs(300);
  auto queue = make_queue();

  EXPECT_EQ(queue->claim_batch(100).size(), 100u);
  EXPECT_EQ(queue->claim_batch(150).size(), 150u);
  EXPECT_EQ(queue->claim_batch(65).size(), 50u);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'running'"),
            300);
}

TEST_F(claim, TakesPriorityThenAgeAndWaitsForRunAfter) {
  auto ids = [&](const std::string& sql) { return scalar(db.url(), sql); };
  auto old_low = ids(
      "INSERT INTO imagen.jobs (owner_user_id, prompt, priority, created_at) "
      "VALUES ('u', 'old low', 0, now() - interval '1 hour') RETURNING id");
  auto new_high = ids(
      "INSERT INTO imagen.jobs (owner_user_id, prompt, priority, created_at) "
      "VALUES ('u', 'new high', 5, now()) RETURNING id");
  auto old_high = ids(
      "INSERT INTO imagen.jobs (owner_user_id, prompt, priority, created_at) "
      "VALUES ('u', 'old high', 5, now() - interval '1 hour') RETURNING id");
  ids("INSERT INTO imagen.jobs (owner_user_id, prompt, priority, run_after) "
      "VALUES ('u', 'later', 9, now() + interval '1 hour') RETURNING id");
  auto queue = make_queue();

  auto first = queue->claim_batch(2);
  auto second = queue->claim_batch(2);

  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].id, old_high);
  EXPECT_EQ(first[1].id, new_high);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, old_low);
  EXPECT_EQ(queue->claim_batch(2).size(), 0u);
}

TEST_F(claim, ReturnsTheJobAndMarksTheRowRunning) {
  auto id = scalar(db.url(),
                   "INSERT INTO imagen.jobs (owner_user_id, prompt, backend, "
                   "width, height, steps, seed, style, max_attempts) VALUES "
                   "('u7', 'a fox', 'procedural', 64, 48, 20, 42, 'ink', NULL) "
                   "RETURNING id");
  auto plain = scalar(db.url(),
                      "INSERT INTO imagen.jobs (owner_user_id, prompt, "
                      "created_at) VALUES ('u8', 'plain', now() + interval "
                      "'1 second') RETURNING id");
  auto queue = make_queue("worker-x", {}, 7);

  auto jobs = queue->claim_batch(2);

  ASSERT_EQ(jobs.size(), 2u);
  const auto& j = jobs[0];
  EXPECT_EQ(j.id, id);
  EXPECT_EQ(j.owner_user_id, "u7");
  EXPECT_EQ(j.prompt, "a fox");
  EXPECT_EQ(j.backend, "procedural");
  EXPECT_EQ(j.style, "ink");
  EXPECT_EQ(j.width, 64);
  EXPECT_EQ(j.height, 48);
  EXPECT_EQ(j.steps, 20);
  EXPECT_EQ(j.seed, 42);
  EXPECT_EQ(j.attempt, 1);
  EXPECT_EQ(j.max_attempts, 7);  // NULL in the row: the worker's default

  const auto& p = jobs[1];
  EXPECT_EQ(p.id, plain);
  EXPECT_EQ(p.backend, "");
  EXPECT_EQ(p.width, 0);
  EXPECT_EQ(p.seed, 0);
  EXPECT_EQ(p.max_attempts, 3);  // the column's default

  EXPECT_EQ(column(id, "status"), "running");
  EXPECT_EQ(column(id, "claimed_by"), "worker-x");
  EXPECT_EQ(column(id,
                   "(claimed_at = heartbeat_at AND "
                   "heartbeat_at <= now())"),
            "true");
}

}  // namespace
}  // namespace imagen::test
