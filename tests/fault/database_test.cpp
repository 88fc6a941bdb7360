// The database goes away under a running worker: a server restart, killed
// sessions, a server that stays down. The worker rides out the first two
// without exiting, loses no job and makes no duplicate image; with the
// server down it still stops within its grace on SIGTERM.
#include <signal.h>

#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/pg_server.hpp"
#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int drained_jobs = 500;

/// A 60s poll interval: after the fault only LISTEN (and the wake a
/// reconnect sends) can start new jobs quickly.
env_changes slow_poll(const worker_env& env) {
  return env.env({{"IMAGEN_WORKER_POLL_INTERVAL", "60s"},
                  {"IMAGEN_WORKER_LEASE", "3s"},
                  {"IMAGEN_WORKER_DB_TIMEOUT", "1s"},
                  {"IMAGEN_WORKER_RETRY_CAP", "1s"}});
}

/// Every job is done with exactly one image that matches its file.
void expect_all_done_once(const worker_env& env, std::size_t jobs) {
  EXPECT_EQ(env.count("done"), static_cast<std::int64_t>(jobs));
  auto images = env.images();
  EXPECT_EQ(images.size(), jobs);
  std::set<std::string> job_ids;
  for (const auto& image : images) {
    job_ids.insert(image.job_id);
    expect_image_matches_file(image, env.output_dir());
  }
  EXPECT_EQ(job_ids.size(), jobs);
  EXPECT_EQ(png_files_under(env.output_dir()).size(), jobs);
}

/// After a fault, a new row must start within a second although the next
/// poll tick is a minute away.
void expect_new_job_starts_within_a_second(const worker_env& env) {
  auto id = env.insert_job("after the fault");
  EXPECT_TRUE(wait_until([&] { return env.job(id).status != "pending"; },
                         milliseconds(1000)))
      << "job " << id << " still pending after 1s";
  EXPECT_TRUE(
      wait_until([&] { return env.job(id).status == "done"; }, seconds(10)));
}

TEST(Database, ServerRestartWhileDrainingLosesNothingAndWorkerStaysUp) {
  pg_server server;
  worker_env env;
  auto worker = start_worker({"run"}, slow_poll(env));
  env.insert_jobs(drained_jobs, "", 128);
  ASSERT_TRUE(wait_until([&] { return env.count("done") >= 20; }, seconds(30)))
      << worker->output();
  ASSERT_LT(env.count("done"), drained_jobs)
      << "the queue drained before the restart; make the jobs bigger";

  server.restart();

  EXPECT_TRUE(wait_until([&] { return env.count("done") == drained_jobs; },
                         seconds(120)))
      << worker->output();
  EXPECT_TRUE(worker->running()) << worker->output();
  expect_all_done_once(env, drained_jobs);
  expect_new_job_starts_within_a_second(env);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_for_exit(seconds(10)), 0) << worker->output();
  EXPECT_EQ(env.count("running"), 0);
  EXPECT_EQ(env.count("pending"), 0);
}

TEST(Database, TerminatedSessionsWhileDrainingLoseNothing) {
  worker_env env;
  auto name = scalar(env.url(), "SELECT current_database()");
  auto worker = start_worker({"run"}, slow_poll(env));
  env.insert_jobs(drained_jobs, "", 128);

  // Three rounds, each after some progress, each killing every session
  // the worker holds (listener, dispatcher, status writer, rescue).
  int terminated = 0;
  for (std::int64_t progress : {20, 120, 240}) {
    ASSERT_TRUE(
        wait_until([&] { return env.count("done") >= progress; }, seconds(60)))
        << worker->output();
    terminated += terminate_sessions(test_admin_url(), name);
  }

  EXPECT_GE(terminated, 3);
  EXPECT_TRUE(wait_until([&] { return env.count("done") == drained_jobs; },
                         seconds(120)))
      << worker->output();
  EXPECT_TRUE(worker->running()) << worker->output();
  expect_all_done_once(env, drained_jobs);
  terminate_sessions(test_admin_url(), name);
  expect_new_job_starts_within_a_second(env);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_for_exit(seconds(10)), 0) << worker->output();
  EXPECT_EQ(env.count("running"), 0);
}

TEST(Database, SigtermWithTheServerDownExitsWithinTheGrace) {
  pg_server server;
  worker_env env;
  auto png = env.dir() / "slow.png";
  write_png(png, 16, 16);
  auto config =
      env.write_config("slow.toml", slow_backend_toml("slow", "1", png));
  auto worker = start_worker({"run", "--config", config},
                             env.env({{"IMAGEN_WORKER_SHUTDOWN_GRACE", "2s"},
                                      {"IMAGEN_WORKER_LEASE", "3s"},
                                      {"IMAGEN_WORKER_DB_TIMEOUT", "1s"}}));
  auto id = scalar(env.url(),
                   "INSERT INTO imagen.jobs (owner_user_id, prompt, backend) "
                   "VALUES ('u', 'in flight', 'slow') RETURNING id");
  ASSERT_TRUE(
      wait_until([&] { return env.job(id).status == "running"; }, seconds(10)))
      << worker->output();

  {
    server_down down(server);
    auto signalled = std::chrono::steady_clock::now();
    worker->signal(SIGTERM);
    auto status = worker->wait_for_exit(seconds(10));
    auto took = std::chrono::steady_clock::now() - signalled;

    // Grace 2s plus one database deadline per connection is the budget;
    // 10s is a generous margin on a loaded machine.
    EXPECT_TRUE(status.has_value())
        << "still running 10s after SIGTERM: " << worker->output();
    EXPECT_LT(took, seconds(10));
  }
  EXPECT_TRUE(processes_matching(png.string()).empty());
}

}  // namespace
}  // namespace imagen::test
