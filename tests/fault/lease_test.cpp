// A worker that dies or freezes mid-job loses its lease: another worker
// rescues the job and completes it exactly once, and the frozen worker's
// late write changes nothing.
#include <signal.h>

#include <filesystem>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

/// A 2s lease (the smallest the loader accepts with a 1s database
/// deadline) keeps rescue fast.
env_changes short_lease(const worker_env& env) {
  return env.env({{"IMAGEN_WORKER_LEASE", "2s"},
                  {"IMAGEN_WORKER_DB_TIMEOUT", "1s"},
                  {"IMAGEN_POOL_SIZE", "1"}});
}

std::string insert_with_backend(const worker_env& env,
                                const std::string& backend) {
  return scalar(env.url(),
                "INSERT INTO imagen.jobs (owner_user_id, prompt, backend) "
                "VALUES ('u', 'rescued job', $1) RETURNING id",
                {backend});
}

void kill_all(const std::string& needle) {
  for (pid_t pid : processes_matching(needle))
    ::kill(pid, SIGKILL);
}

TEST(Lease, KillNineMidJobIsRescuedAndCompletedOnceByAnotherWorker) {
  worker_env env;
  auto png = env.dir() / "slow.png";
  write_png(png, 16, 16);
  auto config =
      env.write_config("slow.toml", slow_backend_toml("slow", "3", png));
  auto first = start_worker({"run", "--config", config}, short_lease(env));
  auto id = insert_with_backend(env, "slow");
  ASSERT_TRUE(
      wait_until([&] { return env.job(id).status == "running"; }, seconds(10)))
      << first->output();

  first->kill_group();
  ASSERT_EQ(first->wait_for_exit(seconds(5)), 128 + SIGKILL);
  // The dead worker's backend is gone with its host in a real crash.
  kill_all(png.string());
  auto second = start_worker({"run", "--config", config}, short_lease(env));
  ASSERT_TRUE(
      wait_until([&] { return env.job(id).status == "done"; }, seconds(20)))
      << second->output();
  second->signal(SIGTERM);

  EXPECT_EQ(second->wait_for_exit(seconds(10)), 0) << second->output();
  auto job = env.job(id);
  EXPECT_EQ(job.attempt, 2);
  EXPECT_EQ(job.error_entries, 1);
  auto images = env.images();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].job_id, id);
  EXPECT_EQ(images[0].id, job.image_id.value_or(""));
  expect_image_matches_file(images[0], env.output_dir());
  EXPECT_EQ(png_files_under(env.output_dir()).size(), 1u);
}

TEST(Lease, StoppedWorkerIsRescuedAndItsLateWriteChangesNothing) {
  worker_env env;
  auto early = env.dir() / "early.png";
  auto late = env.dir() / "late.png";
  write_png(early, 16, 16);
  write_png(late, 24, 24);
  // The first run of the job takes a while and makes one picture; any
  // later run is quick and makes another, so a late write would show.
  auto marker = (env.dir() / "first-run").string();
  auto config = env.write_config(
      "varying.toml",
      command_backend_toml(
          "varying",
          {"/bin/sh", "-c",
           "if mkdir \"" + marker + "\" 2>/dev/null; then sleep 1; cp \"" +
               early.string() + "\" \"$0\"; else cp \"" + late.string() +
               "\" \"$0\"; fi",
           "{output}"}));
  auto frozen = start_worker({"run", "--config", config}, short_lease(env));
  auto id = insert_with_backend(env, "varying");
  // Frozen once its generator has started the first run (the row turns
  // running before the generator starts; stopped in between, the worker
  // would leave the first run to the rescuer).
  ASSERT_TRUE(wait_until(
      [&] {
        return env.job(id).status == "running" &&
               std::filesystem::exists(marker);
      },
      seconds(10)))
      << frozen->output();

  frozen->signal(SIGSTOP);
  auto rescuer = start_worker({"run", "--config", config}, short_lease(env));
  bool rescued =
      wait_until([&] { return env.job(id).status == "done"; }, seconds(20));
  frozen->signal(SIGCONT);
  ASSERT_TRUE(rescued) << rescuer->output();
  auto done = env.job(id);
  auto registered = env.images();
  EXPECT_TRUE(wait_until(
      [&] {
        return std::regex_search(
            frozen->output(),
            std::regex("lost.?lease|lease.?lost", std::regex::icase));
      },
      seconds(10)))
      << frozen->output();
  frozen->signal(SIGTERM);
  rescuer->signal(SIGTERM);

  EXPECT_EQ(frozen->wait_for_exit(seconds(10)), 0) << frozen->output();
  EXPECT_EQ(rescuer->wait_for_exit(seconds(10)), 0) << rescuer->output();
  auto job = env.job(id);
  EXPECT_EQ(job.status, "done");
  EXPECT_EQ(job.attempt, 2);
  EXPECT_EQ(job.image_id, done.image_id);
  auto images = env.images();
  ASSERT_EQ(images.size(), 1u);
  ASSERT_EQ(registered.size(), 1u);
  EXPECT_EQ(images[0].sha256, registered[0].sha256);
  EXPECT_EQ(images[0].sha256, inspect_png_file(late).sha256);
  // The file on disk is still the one the database points at, and the
  // frozen attempt's own file was removed when its write was refused.
  expect_image_matches_file(images[0], env.output_dir());
  EXPECT_EQ(png_files_under(env.output_dir()).size(), 1u);
}

}  // namespace
}  // namespace imagen::test
