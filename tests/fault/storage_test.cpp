// The output directory becomes unwritable during a run: jobs fail with a
// storage error, are retried, and complete once it is writable again. The
// worker never exits.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr int blocked_jobs = 6;

TEST(Storage, UnwritableOutputFailsRetriesThenCompletes) {
  worker_env env;
  auto worker =
      start_worker({"run"}, env.env({{"IMAGEN_WORKER_RETRY_CAP", "300ms"}}));
  // A first job proves the directory works and lets the worker create it.
  auto warm_up = env.insert_job("before the fault");
  ASSERT_TRUE(wait_until([&] { return env.job(warm_up).status == "done"; },
                         seconds(15)))
      << worker->output();

  // chmod does not stop root: a regular file where the directory was does.
  auto moved = env.dir() / "images.moved";
  fs::rename(env.output_dir(), moved);
  write_file(env.output_dir(), "not a directory\n");
  // Enough attempts that no job runs out of them while the fault lasts.
  std::vector<std::string> ids;
  for (const auto& r :
       query(env.url(),
             "INSERT INTO imagen.jobs (owner_user_id, prompt, width, height, "
             "max_attempts) SELECT 'u', 'blocked ' || i, 32, 32, 1000 "
             "FROM generate_series(1, $1::int) AS i RETURNING id",
             {std::to_string(blocked_jobs)}))
    ids.push_back(r.at(0).value_or(""));
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& id : ids)
          if (env.job(id).error_entries < 2)
            return false;
        return true;
      },
      seconds(30)))
      << worker->output();
  for (const auto& id : ids) {
    auto job = env.job(id);
    EXPECT_EQ(job.status == "pending" || job.status == "running", true)
        << job.status;
    ASSERT_TRUE(job.error);
    EXPECT_NE(job.error->find(env.output_dir().string()), std::string::npos)
        << "storage error does not name the path: " << *job.error;
  }
  EXPECT_TRUE(worker->running()) << worker->output();

  fs::remove(env.output_dir());
  fs::rename(moved, env.output_dir());

  EXPECT_TRUE(wait_until([&] { return env.count("done") == blocked_jobs + 1; },
                         seconds(30)))
      << worker->output();
  EXPECT_TRUE(worker->running());
  for (const auto& image : env.images())
    expect_image_matches_file(image, env.output_dir());
  EXPECT_EQ(env.images().size(), static_cast<std::size_t>(blocked_jobs + 1));
  EXPECT_EQ(png_files_under(env.output_dir()).size(),
            static_cast<std::size_t>(blocked_jobs + 1));
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_for_exit(seconds(10)), 0) << worker->output();
}

}  // namespace
}  // namespace imagen::test
