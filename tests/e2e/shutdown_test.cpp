// SIGTERM (and SIGINT, and SIGHUP from a closed terminal) while a job
// runs: the job finishes within the grace, its outcome is written, nothing
// new is claimed, and the worker exits 0.
#include <signal.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

void signal_mid_job_lets_the_job_finish(int sig) {
  worker_env env;
  auto png = env.dir() / "fake.png";
  write_png(png, 24, 16);
  // Two seconds of "generation", then the prepared PNG as the output.
  auto config = env.write_config(
      "slow.toml",
      "[backends.slow]\nkind = \"command\"\n"
      "argv = [\"/bin/sh\", \"-c\", 'sleep 2; cp \"$FAKE_PNG\" \"$0\"', "
      "\"{output}\"]\n"
      "timeout = \"30s\"\n"
      "env = { FAKE_PNG = \"" +
          png.string() + "\" }\n");
  auto worker =
      start_worker({"run", "--config", config},
                   env.env({{"IMAGEN_WORKER_SHUTDOWN_GRACE", "10s"}}));
  auto id = scalar(env.url(),
                   "INSERT INTO imagen.jobs (owner_user_id, prompt, backend) "
                   "VALUES ('u', 'slow one', 'slow') RETURNING id");
  ASSERT_TRUE(
      wait_until([&] { return env.job(id).status == "running"; }, seconds(10)))
      << worker->output();

  worker->signal(sig);
  // Once the dispatcher drains, a new row must wait for another worker.
  // (Inserted earlier, its notification could race the signal.)
  ASSERT_TRUE(wait_until(
      [&] {
        return worker->output().find("event=worker.draining") !=
               std::string::npos;
      },
      seconds(10)))
      << worker->output();
  auto late = env.insert_job("inserted after the signal");
  auto status = worker->wait_for_exit(seconds(15));

  ASSERT_EQ(status, 0) << worker->output();
  auto job = env.job(id);
  EXPECT_EQ(job.status, "done") << job.error.value_or("");
  EXPECT_EQ(job.attempt, 1);
  auto images = env.images();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].job_id, id);
  expect_image_matches_file(images[0], env.output_dir());
  EXPECT_EQ(images[0].sha256, inspect_png_file(png).sha256);
  // A stopping worker claims nothing new.
  EXPECT_EQ(env.job(late).status, "pending");
  EXPECT_EQ(env.job(late).attempt, 0);
}

TEST(Shutdown, SigtermMidJobLetsTheJobFinishAndExits0) {
  signal_mid_job_lets_the_job_finish(SIGTERM);
}

TEST(Shutdown, SigintMidJobLetsTheJobFinishAndExits0) {
  signal_mid_job_lets_the_job_finish(SIGINT);
}

TEST(Shutdown, SighupMidJobLetsTheJobFinishAndExits0) {
  signal_mid_job_lets_the_job_finish(SIGHUP);
}

}  // namespace
}  // namespace imagen::test
