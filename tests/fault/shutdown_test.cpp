// Shutdown under load: jobs that fit in the grace finish; jobs longer than
// the grace go back to pending without spending an attempt; a second
// signal ends the wait at once. No row is left running without a live
// worker, and no backend process outlives the worker.
#include <signal.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

/// Inserts `count` rows for `backend` and waits until all are running.
std::vector<std::string> start_jobs(const worker_env& env, process& worker,
                                    const std::string& backend, int count) {
  std::vector<std::string> ids;
  for (const auto& r : query(env.url(),
                             "INSERT INTO imagen.jobs (owner_user_id, "
                             "prompt, backend) SELECT 'u', 'job ' || i, $1 "
                             "FROM generate_series(1, $2::int) AS i "
                             "RETURNING id",
                             {backend, std::to_string(count)}))
    ids.push_back(r.at(0).value_or(""));
  EXPECT_TRUE(
      wait_until([&] { return env.count("running") == count; }, seconds(10)))
      << worker.output();
  return ids;
}

/// Every row is pending again, with its attempt given back and no owner.
void expect_released(const worker_env& env,
                     const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    auto job = env.job(id);
    EXPECT_EQ(job.status, "pending") << id;
    EXPECT_EQ(job.attempt, 0) << id;
    EXPECT_EQ(job.error_entries, 0) << id;
  }
  EXPECT_EQ(scalar(env.url(),
                   "SELECT count(*) FROM imagen.jobs WHERE "
                   "claimed_by IS NOT NULL OR status = 'running'"),
            "0");
}

TEST(Shutdown, JobsLongerThanTheGraceAreReleasedNotCounted) {
  worker_env env;
  auto png = env.dir() / "slow.png";
  write_png(png, 16, 16);
  auto config =
      env.write_config("slow.toml", slow_backend_toml("slow", "30", png));
  auto worker = start_worker({"run", "--config", config},
                             env.env({{"IMAGEN_WORKER_SHUTDOWN_GRACE", "1s"}}));
  auto ids = start_jobs(env, *worker, "slow", 2);

  auto signalled = std::chrono::steady_clock::now();
  worker->signal(SIGTERM);
  auto status = worker->wait_for_exit(seconds(10));

  EXPECT_EQ(status, 0) << worker->output();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, seconds(6));
  expect_released(env, ids);
  EXPECT_TRUE(env.images().empty());
  EXPECT_TRUE(wait_until(
      [&] { return processes_matching(png.string()).empty(); }, seconds(3)))
      << "backend processes outlived the worker";
}

// A slot that never answers (IMAGEN_TEST_HANG: deaf to cancel and to
// exit) keeps its actor alive after the supervisor has decided, and the
// actor system would wait for it for ever. The watchdog ends the process
// db_timeout + 5 s after the decision, with the status decided (1: an
// outcome was never written), so that a service manager can restart it.
TEST(Shutdown, AHungSlotCannotKeepTheProcessAlive) {
  worker_env env;
  auto worker =
      start_worker({"run"}, env.env({
                                {"IMAGEN_TEST_HANG", "slot:1"},
                                {"IMAGEN_WORKER_SHUTDOWN_GRACE", "1s"},
                                {"IMAGEN_WORKER_DB_TIMEOUT", "1s"},
                                {"IMAGEN_WORKER_LEASE", "2s"},
                                {"IMAGEN_POOL_SIZE", "1"},
                            }));
  start_jobs(env, *worker, "procedural", 1);
  ASSERT_TRUE(wait_until(
      [&] {
        return worker->output().find("event=fault.hang") != std::string::npos;
      },
      seconds(10)))
      << worker->output();

  worker->signal(SIGTERM);
  auto status = worker->wait_for_exit(seconds(60));

  EXPECT_EQ(status, 1) << worker->output();
  EXPECT_NE(worker->output().find("event=worker.shutdown_incomplete"),
            std::string::npos)
      << worker->output();
  EXPECT_NE(worker->output().find("event=worker.stuck"), std::string::npos)
      << worker->output();
  EXPECT_NE(worker->output().find("status=1"), std::string::npos)
      << worker->output();
}

TEST(Shutdown, SecondSignalEndsTheGraceAtOnce) {
  worker_env env;
  auto png = env.dir() / "slow.png";
  write_png(png, 16, 16);
  auto config =
      env.write_config("slow.toml", slow_backend_toml("slow", "30", png));
  auto worker =
      start_worker({"run", "--config", config},
                   env.env({{"IMAGEN_WORKER_SHUTDOWN_GRACE", "60s"}}));
  auto ids = start_jobs(env, *worker, "slow", 2);

  worker->signal(SIGTERM);
  // The first signal alone must not end the run: the grace is a minute.
  EXPECT_FALSE(worker->wait_for_exit(milliseconds(1000))) << worker->output();
  auto second = std::chrono::steady_clock::now();
  worker->signal(SIGTERM);
  auto status = worker->wait_for_exit(seconds(10));

  EXPECT_EQ(status, 0) << worker->output();
  EXPECT_LT(std::chrono::steady_clock::now() - second, seconds(5));
  expect_released(env, ids);
  EXPECT_TRUE(wait_until(
      [&] { return processes_matching(png.string()).empty(); }, seconds(3)))
      << "backend processes outlived the worker";
}

TEST(Shutdown, JobsWithinTheGraceFinishAndQuickOnesAreNotReleased) {
  worker_env env;
  auto png = env.dir() / "slow.png";
  write_png(png, 16, 16);
  auto config =
      env.write_config("slow.toml", slow_backend_toml("slow", "1.5", png));
  auto worker =
      start_worker({"run", "--config", config},
                   env.env({{"IMAGEN_WORKER_SHUTDOWN_GRACE", "20s"}}));
  auto ids = start_jobs(env, *worker, "slow", 2);

  worker->signal(SIGTERM);
  auto status = worker->wait_for_exit(seconds(20));

  EXPECT_EQ(status, 0) << worker->output();
  for (const auto& id : ids) {
    auto job = env.job(id);
    EXPECT_EQ(job.status, "done") << job.error.value_or("");
    EXPECT_EQ(job.attempt, 1);
  }
  auto images = env.images();
  EXPECT_EQ(images.size(), 2u);
  for (const auto& image : images)
    expect_image_matches_file(image, env.output_dir());
}

}  // namespace
}  // namespace imagen::test
