// A command backend configured in the TOML file: its PNG becomes the job's
// image; a failing command is retried and ends failed with its stderr.
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

std::string insert_for(const worker_env& env, const std::string& backend,
                       const std::string& prompt) {
  return scalar(env.url(),
                "INSERT INTO imagen.jobs (owner_user_id, prompt, backend, "
                "width, height) VALUES ('u', $1, $2, 40, 24) RETURNING id",
                {prompt, backend});
}

TEST(CommandBackend, SuccessStoresTheCommandsPngAndFailureKeepsStderr) {
  worker_env env;
  auto png = env.dir() / "made-by-command.png";
  write_png(png, 40, 24);
  auto args = env.dir() / "args";
  // "ok" records its arguments (one per line) and writes the prepared PNG
  // to {output}; "broken" complains on stderr and exits 1.
  auto config = env.write_config(
      "command.toml",
      command_backend_toml(
          "ok", {"/bin/sh", "-c",
                 "printf \"%s\\n\" \"$@\" > \"" + args.string() + "\"; cp \"" +
                     png.string() + "\" \"$0\"",
                 "{output}", "{width}", "{height}", "{prompt}"}) +
          command_backend_toml(
              "broken", {"/bin/sh", "-c",
                         "echo \"model weights missing in /models\" >&2; "
                         "exit 1",
                         "{output}"}));
  auto ok = insert_for(env, "ok", "from a command");
  auto broken = insert_for(env, "broken", "never works");

  auto run = run_worker({"run", "--exit-when-idle", "--config", config},
                        env.env(), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  auto done = env.job(ok);
  EXPECT_EQ(done.status, "done") << done.error.value_or("");
  EXPECT_EQ(done.attempt, 1);
  EXPECT_EQ(read_file(args), "40\n24\nfrom a command\n");
  auto images = env.images();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].job_id, ok);
  EXPECT_EQ(images[0].sha256, inspect_png_file(png).sha256);
  expect_image_matches_file(images[0], env.output_dir());

  auto failed = env.job(broken);
  EXPECT_EQ(failed.status, "failed");
  EXPECT_EQ(failed.attempt, 3);
  EXPECT_EQ(failed.error_entries, 3);
  ASSERT_TRUE(failed.error);
  EXPECT_NE(failed.error->find("model weights missing in /models"),
            std::string::npos)
      << *failed.error;
  EXPECT_NE(failed.error->find("status 1"), std::string::npos) << *failed.error;
  EXPECT_EQ(env.count("pending") + env.count("running"), 0);
}

}  // namespace
}  // namespace imagen::test
