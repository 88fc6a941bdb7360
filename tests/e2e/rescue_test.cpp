// A worker started after another one died finds the dead one's expired
// claims at once: a batch run (--exit-when-idle) must not exit with them
// still `running`.
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

TEST(Rescue, ABatchRunRescuesExpiredClaimsBeforeItDecidesItIsIdle) {
  worker_env env;
  auto expired = env.insert_job("claimed by a worker that was killed");
  auto live = env.insert_job("claimed by a worker that is alive");
  scalar(env.url(),
         "UPDATE imagen.jobs SET status = 'running', attempt = 1, "
         "claimed_by = 'dead:1:abcdef', claimed_at = now() - interval '5 "
         "minutes', heartbeat_at = now() - interval '2 minutes' "
         "WHERE id = $1 RETURNING id",
         {expired});
  scalar(env.url(),
         "UPDATE imagen.jobs SET status = 'running', attempt = 1, "
         "claimed_by = 'alive:2:abcdef', claimed_at = now(), "
         "heartbeat_at = now() WHERE id = $1 RETURNING id",
         {live});

  auto run = run_worker({"run", "--exit-when-idle"},
                        env.env({{"IMAGEN_WORKER_LEASE", "60s"}}), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  auto job = env.job(expired);
  EXPECT_EQ(job.status, "done") << job.error.value_or("");
  EXPECT_EQ(job.attempt, 2);
  EXPECT_EQ(job.error_entries, 1);
  // A live worker's claim is not touched.
  EXPECT_EQ(env.job(live).status, "running");
  EXPECT_EQ(env.job(live).attempt, 1);
}

}  // namespace
}  // namespace imagen::test
