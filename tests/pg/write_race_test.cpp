// A reviewer's attack on the fenced write-back: outcomes that wait for a
// row lock while a rescue, a heartbeat, an orphan requeue or the
// application changes the row; lock order (no deadlock between writers of
// overlapping rows); and the exact `applied` / `lost_lease` answer for
// mixed, duplicate, empty and large batches and for an image that an
// earlier attempt registered.
#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg_connection.hpp"
#include "core/sql.hpp"
#include "tests/pg/pg_fixture.hpp"
#include "tests/support/process.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

constexpr auto applied = write_result::applied;
constexpr auto lost = write_result::lost_lease;

/// A queue whose connection is inside a transaction the test opened: what
/// the queue writes stays locked and invisible until `commit`.
struct open_transaction {
  pg_connection* connection = nullptr;
  std::unique_ptr<pg_queue> queue;

  void run(const char* sql) const { connection->run_script("test sql", sql); }
  void commit() const { run("COMMIT"); }
};

class write_race : public pg_test {
 protected:
  open_transaction begin(const std::string& worker) const {
    auto connection = std::make_unique<pg_connection>(settings());
    open_transaction t;
    t.connection = connection.get();
    t.queue = std::make_unique<pg_queue>(std::move(connection), worker,
                                         retry_policy{}, 3);
    t.run("BEGIN");
    return t;
  }

  /// Whether `waiters` backends of this database are waiting for a lock
  /// (polled; the bound only keeps a broken test from hanging).
  bool waiting_for_locks(int waiters) const {
    return wait_until(
        [&] {
          return count(
                     "SELECT count(*) FROM pg_stat_activity "
                     "WHERE datname = current_database() "
                     "AND wait_event_type = 'Lock'") == waiters;
        },
        seconds(20));
  }

  /// Claims one job whose last attempt this claim is (max_attempts 1).
  job claim_last_attempt(pg_queue& queue) const {
    exec(db.url(),
         "INSERT INTO imagen.jobs (owner_user_id, prompt, max_attempts) "
         "VALUES ('u', 'p', 1)");
    return queue.claim_batch(1).at(0);
  }

  void age_heartbeats() const {
    exec(db.url(),
         "UPDATE imagen.jobs SET heartbeat_at = now() - interval '1 hour' "
         "WHERE status = 'running'");
  }

  std::int64_t images() const {
    return count("SELECT count(*) FROM imagen.images");
  }
};

/// The outcomes to write for `j`, by kind.
enum class kind { success, failure, cancelled };

/// The image of one attempt; the image store names the attempt in the path.
artifact image_of(const job& j) {
  auto image = sample_image(j.id);
  image.path = "/var/images/" + j.id + "-" + std::to_string(j.attempt) + ".png";
  return image;
}

outcome outcome_of(const job& j, kind k) {
  switch (k) {
    case kind::success:
      return success(j, image_of(j), 1);
    case kind::failure:
      return failure(j, failure_kind::backend, "sd exit 1");
    case kind::cancelled:
      return failure(j, failure_kind::cancelled, "shutting down");
  }
  return {};
}

const kind every_kind[] = {kind::success, kind::failure, kind::cancelled};

// An outcome that waits for the row while a rescue moves it on must be
// fenced out when the rescue commits: both when the row goes back to
// pending (claimed_by cleared) and when it fails with its attempts used up
// (claimed_by and attempt unchanged: only the status check catches it).
TEST_F(write_race, AnOutcomeWaitingOnARescueIsFencedOut) {
  for (bool exhausted : {false, true}) {
    for (kind k : every_kind) {
      SCOPED_TRACE(std::string(exhausted ? "exhausted " : "retry ") +
                   std::to_string(static_cast<int>(k)));
      exec(db.url(), "TRUNCATE imagen.jobs, imagen.images");
      auto mine = make_queue("worker-a");
      job j;
      if (exhausted) {
        j = claim_last_attempt(*mine);
      } else {
        add_jobs(1);
        j = mine->claim_batch(1).at(0);
      }
      age_heartbeats();
      auto rescuer = begin("worker-b");
      ASSERT_EQ(rescuer.queue->rescue_expired(seconds(60)), 1);

      auto write = std::async(std::launch::async, [&] {
        return mine->write_outcomes({outcome_of(j, k)});
      });
      EXPECT_TRUE(waiting_for_locks(1)) << "the write did not wait";
      rescuer.commit();

      EXPECT_EQ(write.get(), std::vector<write_result>{lost});
      EXPECT_EQ(column(j.id, "status"), exhausted ? "failed" : "pending");
      EXPECT_EQ(column(j.id, "attempt"), "1");
      EXPECT_EQ(column(j.id, "jsonb_array_length(errors)"), "1");
      EXPECT_EQ(column(j.id, "errors->0->>'message'").find("sd exit"),
                std::string::npos);
      EXPECT_TRUE(is_null(j.id, "image_id"));
      EXPECT_EQ(images(), 0);
    }
  }
}

// The same for a batch of every kind (one transaction that locks first).
TEST_F(write_race, AMixedBatchWaitingOnARescueIsFencedOutWhole) {
  add_jobs(3);
  auto mine = make_queue("worker-a");
  auto jobs = mine->claim_batch(3);
  ASSERT_EQ(jobs.size(), 3u);
  exec(db.url(), "UPDATE imagen.jobs SET max_attempts = 1");
  age_heartbeats();
  auto rescuer = begin("worker-b");
  ASSERT_EQ(rescuer.queue->rescue_expired(seconds(60)), 3);

  auto write = std::async(std::launch::async, [&] {
    return mine->write_outcomes({outcome_of(jobs[0], kind::success),
                                 outcome_of(jobs[1], kind::failure),
                                 outcome_of(jobs[2], kind::cancelled)});
  });
  EXPECT_TRUE(waiting_for_locks(1)) << "the write did not wait";
  rescuer.commit();

  EXPECT_EQ(write.get(), (std::vector<write_result>{lost, lost, lost}));
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'failed' "
                  "AND attempt = 1 AND jsonb_array_length(errors) = 1"),
            3);
  EXPECT_EQ(images(), 0);
}

// A heartbeat of the same worker on another connection (the dispatcher's)
// only renews the lease: the write that waited for it still applies.
TEST_F(write_race, AHeartbeatOnAnotherConnectionDoesNotFenceTheWriteOut) {
  for (kind k : every_kind) {
    SCOPED_TRACE(static_cast<int>(k));
    exec(db.url(), "TRUNCATE imagen.jobs, imagen.images");
    add_jobs(1);
    auto mine = make_queue("worker-a");
    auto j = mine->claim_batch(1).at(0);
    auto dispatcher = begin("worker-a");
    ASSERT_TRUE(dispatcher.queue->heartbeat({ref_of(j)}).empty());

    auto write = std::async(std::launch::async, [&] {
      return mine->write_outcomes({outcome_of(j, k)});
    });
    EXPECT_TRUE(waiting_for_locks(1)) << "the write did not wait";
    dispatcher.commit();

    EXPECT_EQ(write.get(), std::vector<write_result>{applied});
    const char* status[] = {"done", "pending", "pending"};
    EXPECT_EQ(column(j.id, "status"), status[static_cast<int>(k)]);
    EXPECT_EQ(images(), k == kind::success ? 1 : 0);
  }
}

// The application cancels (status failed, the claim left as it was) or
// deletes a row while an outcome waits for it: nothing is written and no
// image is registered.
TEST_F(write_race, ARowTheApplicationCancelsOrDeletesMeanwhileIsLost) {
  const char* changes[] = {
      "UPDATE imagen.jobs SET status = 'failed', error = 'cancelled by user'",
      "DELETE FROM imagen.jobs"};
  for (const char* change : changes) {
    for (kind k : every_kind) {
      SCOPED_TRACE(std::string(change) + " " +
                   std::to_string(static_cast<int>(k)));
      exec(db.url(), "TRUNCATE imagen.jobs, imagen.images");
      add_jobs(1);
      auto mine = make_queue("worker-a");
      auto j = mine->claim_batch(1).at(0);
      pg_connection application(settings());
      application.run_script("begin", "BEGIN");
      application.run_script("change", change);

      auto write = std::async(std::launch::async, [&] {
        return mine->write_outcomes({outcome_of(j, k)});
      });
      EXPECT_TRUE(waiting_for_locks(1)) << "the write did not wait";
      application.run_script("commit", "COMMIT");

      EXPECT_EQ(write.get(), std::vector<write_result>{lost});
      EXPECT_EQ(images(), 0);
      EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs "
                      "WHERE status <> 'failed' OR error <> "
                      "'cancelled by user' OR errors <> '[]'"),
                0);
    }
  }
}

// The other way round: while a success is being written (its row locked,
// not yet committed), another worker's rescue skips the row, and this
// worker's heartbeat and orphan requeue wait, then leave it done.
TEST_F(write_race, AWriteInProgressIsSkippedByRescueAndWaitedForByTheRest) {
  add_jobs(1);
  auto probe = make_queue("worker-a");
  auto j = probe->claim_batch(1).at(0);
  age_heartbeats();
  auto writer = begin("worker-a");
  ASSERT_EQ(writer.queue->write_outcomes({outcome_of(j, kind::success)}),
            std::vector<write_result>{applied});

  EXPECT_EQ(make_queue("worker-b")->rescue_expired(seconds(60)), 0);
  auto heartbeat = std::async(std::launch::async, [&] {
    return make_queue("worker-a")->heartbeat({ref_of(j)});
  });
  auto requeue = std::async(std::launch::async, [&] {
    return make_queue("worker-a")->requeue_orphans({}, "restarted");
  });
  EXPECT_TRUE(waiting_for_locks(2)) << "heartbeat and requeue did not wait";
  writer.commit();

  EXPECT_EQ(heartbeat.get(), std::vector<job_ref>{ref_of(j)});
  EXPECT_EQ(requeue.get(), 0);
  EXPECT_EQ(column(j.id, "status"), "done");
  EXPECT_EQ(column(j.id, "errors"), "[]");
  EXPECT_EQ(images(), 1);
}

// Every writer of overlapping rows locks them in id order. Here a
// transaction holds the lower id, a write of [higher, lower] waits for it,
// and the transaction then takes the higher id: it only gets it because
// the waiting write has not locked it first. Were the write to lock in
// batch order, PostgreSQL would detect a deadlock and abort one of them.
TEST_F(write_race, WritersLockInIdOrderSoOverlappingBatchesCannotDeadlock) {
  using writer = std::function<void(pg_queue&, const job& hi, const job& lo)>;
  auto expect_applied = [](std::vector<write_result> results) {
    EXPECT_EQ(results, (std::vector<write_result>{applied, applied}));
  };
  const std::vector<std::pair<const char*, writer>> writers = {
      {"successes",
       [&](pg_queue& q, const job& hi, const job& lo) {
         expect_applied(q.write_outcomes(
             {outcome_of(hi, kind::success), outcome_of(lo, kind::success)}));
       }},
      {"failures",
       [&](pg_queue& q, const job& hi, const job& lo) {
         expect_applied(q.write_outcomes(
             {outcome_of(hi, kind::failure), outcome_of(lo, kind::failure)}));
       }},
      {"cancellations",
       [&](pg_queue& q, const job& hi, const job& lo) {
         expect_applied(q.write_outcomes({outcome_of(hi, kind::cancelled),
                                          outcome_of(lo, kind::cancelled)}));
       }},
      {"mixed",
       [&](pg_queue& q, const job& hi, const job& lo) {
         expect_applied(q.write_outcomes(
             {outcome_of(hi, kind::success), outcome_of(lo, kind::failure)}));
       }},
      {"release",
       [&](pg_queue& q, const job& hi, const job& lo) {
         EXPECT_EQ(q.release({ref_of(hi), ref_of(lo)}), 2);
       }},
      {"heartbeat",
       [&](pg_queue& q, const job& hi, const job& lo) {
         EXPECT_TRUE(q.heartbeat({ref_of(hi), ref_of(lo)}).empty());
       }},
      {"requeue_orphans",
       [&](pg_queue& q, const job&, const job&) {
         EXPECT_EQ(q.requeue_orphans({}, "restarted"), 2);
       }},
  };
  for (const auto& [name, write] : writers) {
    SCOPED_TRACE(name);
    exec(db.url(), "TRUNCATE imagen.jobs, imagen.images");
    add_jobs(2);
    auto mine = make_queue("worker-a");
    auto jobs = mine->claim_batch(2);
    ASSERT_EQ(jobs.size(), 2u);
    std::sort(jobs.begin(), jobs.end(),
              [](const job& a, const job& b) { return a.id < b.id; });
    ASSERT_EQ(scalar(db.url(), "SELECT ($1::uuid < $2::uuid)::text",
                     {jobs[0].id, jobs[1].id}),
              "true");
    const job& lo = jobs[0];
    const job& hi = jobs[1];
    auto holder = begin("worker-a");
    ASSERT_TRUE(holder.queue->heartbeat({ref_of(lo)}).empty());

    auto written = std::async(std::launch::async,
                              [&, write = write] { write(*mine, hi, lo); });
    EXPECT_TRUE(waiting_for_locks(1)) << "the write did not wait";
    try {
      EXPECT_TRUE(holder.queue->heartbeat({ref_of(hi)}).empty());
    } catch (const queue_error& e) {
      ADD_FAILURE() << "the holder could not take the higher id: " << e.what();
    }
    holder.commit();
    try {
      written.get();
    } catch (const queue_error& e) {
      ADD_FAILURE() << "the write failed: " << e.what();
    }
  }
}

// One batch of every kind, each with a twin at another attempt, a job of
// another worker, and a repeat of an outcome already in the batch.
TEST_F(write_race, AMixedBatchAnswersEachOutcomeExactly) {
  add_jobs(4);
  auto mine = make_queue("worker-a");
  auto jobs = mine->claim_batch(3);
  ASSERT_EQ(jobs.size(), 3u);
  auto foreign = make_queue("worker-b")->claim_batch(1).at(0);
  auto stale = [](job j) {
    j.attempt += 1;
    return j;
  };

  auto results = mine->write_outcomes({
      outcome_of(jobs[0], kind::success),
      outcome_of(stale(jobs[0]), kind::success),
      outcome_of(jobs[1], kind::failure),
      outcome_of(stale(jobs[1]), kind::failure),
      outcome_of(foreign, kind::success),
      outcome_of(foreign, kind::failure),
      outcome_of(foreign, kind::cancelled),
      outcome_of(jobs[2], kind::cancelled),
      outcome_of(stale(jobs[2]), kind::cancelled),
      outcome_of(jobs[1], kind::failure),
      outcome_of(jobs[0], kind::failure),
  });

  // The repeat of jobs[1]'s failure finds it written (in the row's
  // errors), like a repeated success finds its image registered.
  EXPECT_EQ(results,
            (std::vector<write_result>{applied, lost, applied, lost, lost, lost,
                                       lost, applied, lost, applied, lost}));
  EXPECT_EQ(column(jobs[0].id, "status"), "done");
  EXPECT_EQ(column(jobs[0].id, "errors"), "[]");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images WHERE job_id = $1 "
                  "AND uri = $2",
                  {jobs[0].id, "file://" + image_of(jobs[0]).path}),
            1);
  EXPECT_EQ(column(jobs[2].id, "status"), "pending");
  EXPECT_EQ(column(jobs[2].id, "attempt"), "0");
  EXPECT_EQ(column(jobs[1].id, "status"), "pending");
  EXPECT_EQ(column(jobs[1].id, "jsonb_array_length(errors)"), "1");
  EXPECT_EQ(column(foreign.id, "status"), "running");
  EXPECT_EQ(column(foreign.id, "claimed_by"), "worker-b");
  EXPECT_EQ(column(foreign.id, "errors"), "[]");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images WHERE job_id = $1",
                  {foreign.id}),
            0);
}

TEST_F(write_race, AnEmptyBatchAnswersNothingAndTouchesNothing) {
  add_jobs(1);
  auto queue = make_queue();
  auto j = queue->claim_batch(1).at(0);
  EXPECT_TRUE(queue->write_outcomes({}).empty());
  EXPECT_EQ(column(j.id, "status"), "running");
  EXPECT_EQ(images(), 0);
}

// 1,024 outcomes of every kind, one in seven at a wrong attempt, in one
// call: each answer matches what the row shows afterwards.
TEST_F(write_race, ABatchOf1024OutcomesAnswersEachOne) {
  add_jobs(1024);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(1024);
  ASSERT_EQ(jobs.size(), 1024u);
  std::vector<outcome> outcomes;
  std::vector<write_result> expected;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto j = jobs[i];
    bool is_stale = i % 7 == 3;
    if (is_stale) {
      j.attempt += 5;
    }
    outcomes.push_back(outcome_of(j, every_kind[i % 3]));
    expected.push_back(is_stale ? lost : applied);
  }

  auto results = queue->write_outcomes(outcomes);

  ASSERT_EQ(results, expected);
  std::int64_t done = 0, retried = 0, released = 0, untouched = 0;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (expected[i] == lost) {
      ++untouched;
    } else if (i % 3 == 0) {
      ++done;
    } else if (i % 3 == 1) {
      ++retried;
    } else {
      ++released;
    }
  }
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'running' "
                  "AND claimed_by = 'worker-a' AND attempt = 1"),
            untouched);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'done' "
                  "AND image_id IS NOT NULL"),
            done);
  EXPECT_EQ(images(), done);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'pending' "
                  "AND attempt = 1 AND jsonb_array_length(errors) = 1"),
            retried);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'pending' "
                  "AND attempt = 0 AND errors = '[]'"),
            released);
}

// The application runs a done job again: the new attempt's success takes
// over the job's image row (ON CONFLICT on job_id), keeping its id; the
// old attempt's outcome, if it came back now, is a lost lease.
TEST_F(write_race, ASuccessOverAnEarlierAttemptsImageReplacesIt) {
  add_jobs(1);
  auto queue = make_queue();
  auto first = queue->claim_batch(1).at(0);
  auto first_image = image_of(first);
  ASSERT_EQ(queue->write_outcomes({success(first, first_image, 1)}),
            std::vector<write_result>{applied});
  auto image_id = column(first.id, "image_id");
  exec(db.url(), "UPDATE imagen.jobs SET status = 'pending'");

  auto second = queue->claim_batch(1).at(0);
  ASSERT_EQ(second.attempt, 2);
  auto second_image = image_of(second);
  second_image.sha256 = std::string(64, 'b');
  EXPECT_EQ(queue->write_outcomes({success(second, second_image, 1)}),
            std::vector<write_result>{applied});

  EXPECT_EQ(column(second.id, "status"), "done");
  EXPECT_EQ(column(second.id, "image_id"), image_id);
  auto rows =
      query(db.url(), "SELECT id::text, uri, sha256 FROM imagen.images");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], image_id);
  EXPECT_EQ(rows[0][1], "file://" + second_image.path);
  EXPECT_EQ(rows[0][2], std::string(64, 'b'));

  EXPECT_EQ(queue->write_outcomes({success(first, first_image, 1)}),
            std::vector<write_result>{lost});
  EXPECT_EQ(count("SELECT count(*) FROM imagen.images WHERE uri = $1",
                  {"file://" + second_image.path}),
            1);
}

// A stale attempt (its write's answer was lost and it is retried, while
// this worker already claimed and finished the next attempt) shares a
// batch with the current one: the current one is written. (Found when
// write_batch took only the first outcome per job id: both came back
// lost, the image file was removed, the row stayed running.)
TEST_F(write_race, ALaterAttemptAfterAStaleOneInOneBatchIsWritten) {
  add_jobs(1);
  auto queue = make_queue();
  auto first = queue->claim_batch(1).at(0);
  auto retry = failure(first, failure_kind::backend, "sd exit 1");
  ASSERT_EQ(queue->write_outcomes({retry}), std::vector<write_result>{applied});
  exec(db.url(), "UPDATE imagen.jobs SET run_after = now()");
  auto second = queue->claim_batch(1).at(0);
  ASSERT_EQ(second.attempt, 2);

  // The status writer retries the first write, whose answer it never got,
  // with the second attempt's outcome behind it. The first is found in
  // the row's errors: written, not a lost lease.
  auto results =
      queue->write_outcomes({retry, outcome_of(second, kind::success)});

  EXPECT_EQ(results, (std::vector<write_result>{applied, applied}));
  EXPECT_EQ(column(second.id, "status"), "done");
  EXPECT_EQ(images(), 1);
}

// claim_statements keeps its statements across a reconnect; the new
// session has none of them and gets each again on first use. A claim of
// more than 64 rows is planned per call and never kept.
TEST_F(write_race, ClaimStatementsArePreparedAgainAfterAReconnect) {
  add_jobs(200);
  auto s = settings();
  s.application_name = "imagen-test-claims";
  auto connection = std::make_unique<pg_connection>(s);
  auto* session = connection.get();
  pg_queue queue(std::move(connection), "worker-a", {}, 3);
  EXPECT_EQ(queue.claim_batch(1).size(), 1u);
  EXPECT_EQ(queue.claim_batch(2).size(), 2u);
  EXPECT_EQ(queue.claim_batch(70).size(), 70u);
  query(test_admin_url(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1",
        {"imagen-test-claims"});

  EXPECT_THROW(queue.claim_batch(2), queue_error);
  EXPECT_EQ(queue.claim_batch(2).size(), 2u);
  EXPECT_EQ(queue.claim_batch(1).size(), 1u);
  EXPECT_EQ(queue.claim_batch(70).size(), 70u);

  auto names = session->query({"names",
                               "SELECT string_agg(name, ',' ORDER BY name) "
                               "FROM pg_prepared_statements"},
                              {});
  EXPECT_EQ(names.string(0, 0), "imagen_claim_batch_1,imagen_claim_batch_2");
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE status = 'running' "
                  "AND attempt = 1 AND claimed_by = 'worker-a'"),
            146);
}

/// A queue with history and a backlog: 150,000 done rows and 30,000
/// pending ones, with fresh statistics.
void fill_with_backlog(const std::string& url) {
  exec(url,
       "INSERT INTO imagen.jobs (owner_user_id, prompt, status) "
       "SELECT 'u', 'p', 'done' FROM generate_series(1, 150000); "
       "INSERT INTO imagen.jobs (owner_user_id, prompt) "
       "SELECT 'u', 'p' FROM generate_series(1, 30000); "
       "ANALYZE imagen.jobs");
}

/// The generic plan of the claim for `limit`.
std::string generic_claim_plan(const pg_settings& settings, int limit) {
  pg_connection session(settings);
  session.run_script("generic", "SET plan_cache_mode = force_generic_plan");
  sql::claim_statements claims("worker-a", 3);
  const auto& claim = claims.for_limit(limit);
  std::string sql;
  if (sql::claim_statements::cached(limit)) {
    // Prepares the statement; the rows it claims change no plan.
    session.execute(claim, {});
    sql = "EXPLAIN EXECUTE " + std::string(claim.name);
  } else {
    // Not prepared: planned on every call, as the queue runs it.
    sql = "EXPLAIN " + std::string(claim.text);
  }
  auto rows = session.query({"explain", sql.c_str()}, {});
  std::string plan;
  for (int r = 0; r < rows.size(); ++r) {
    plan += std::string(rows.text(r, 0)) + "\n";
  }
  return plan;
}

// A claim on a generic plan (plan_cache_mode = force_generic_plan, or the
// cached plan of a statement with the limit in its text) must reach the
// rows it claims by primary key, not by reading the whole table.
TEST_F(write_race, ClaimsOfUpTo64RowsUpdateByPrimaryKeyOnAGenericPlan) {
  fill_with_backlog(db.url());
  for (int limit : {1, 64}) {
    SCOPED_TRACE(limit);
    auto plan = generic_claim_plan(settings(), limit);
    EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
    EXPECT_NE(plan.find("jobs_pkey"), std::string::npos) << plan;
  }
}

// Larger claims are planned on every call, even where the server forces
// generic plans. (Found when they shared one statement with LIMIT $3: its
// generic plan expected a tenth of the table and read all of it.)
TEST_F(write_race, LargerClaimsUpdateByPrimaryKeyOnAGenericPlan) {
  fill_with_backlog(db.url());
  for (int limit : {65, 1024}) {
    SCOPED_TRACE(limit);
    auto plan = generic_claim_plan(settings(), limit);
    EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
  }
}

}  // namespace
}  // namespace imagen::test
