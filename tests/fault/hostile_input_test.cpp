// Hostile input: a prompt full of shell syntax reaches a command backend
// as one argument and runs nothing; a password in the database URL never
// reaches a log line; no prompt puts a file outside output.dir.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

TEST(HostileInput, ShellSyntaxInThePromptRunsNothing) {
  worker_env env;
  auto png = env.dir() / "ok.png";
  write_png(png, 16, 16);
  auto victim = env.dir() / "victim";
  fs::create_directory(victim);
  auto pwned = env.dir() / "pwned";
  auto recorded = env.dir() / "prompt-argument";
  // The prompt only ever names paths inside this test's directory, so even
  // a worker that wrongly ran it through a shell harms nothing else.
  std::string prompt = "$(touch " + pwned.string() + "); rm -rf " +
                       victim.string() + "; `touch " + pwned.string() +
                       "` && echo ${HOME} | tee " + pwned.string() + " \"'";
  // The backend writes its first argument to a file verbatim.
  auto config = env.write_config(
      "record.toml",
      command_backend_toml(
          "record", {"/bin/sh", "-c",
                     "printf %s \"$1\" > \"" + recorded.string() + "\"; cp \"" +
                         png.string() + "\" \"$0\"",
                     "{output}", "{prompt}"}));
  auto id = scalar(env.url(),
                   "INSERT INTO imagen.jobs (owner_user_id, prompt, backend) "
                   "VALUES ('u', $1, 'record') RETURNING id",
                   {prompt});

  auto run = run_worker({"run", "--exit-when-idle", "--config", config},
                        env.env(), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  EXPECT_EQ(env.job(id).status, "done") << env.job(id).error.value_or("");
  EXPECT_EQ(read_file(recorded), prompt);
  EXPECT_FALSE(fs::exists(pwned));
  EXPECT_TRUE(fs::is_directory(victim));
}

TEST(HostileInput, PathsInThePromptCannotMoveTheFile) {
  worker_env env;
  auto escape = env.dir() / "escaped.png";
  env.insert_job("../../../" + escape.string());
  env.insert_job(escape.string());
  env.insert_job("/../..\\..\\%2e%2e/\nx.png");

  auto run = run_worker({"run", "--exit-when-idle"}, env.env(), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  EXPECT_EQ(env.count("done"), 3);
  for (const auto& image : env.images())
    expect_image_matches_file(image, env.output_dir());
  EXPECT_FALSE(fs::exists(escape));
  // Nothing but the output directory and the worker's files appeared
  // next to it.
  for (const auto& entry : fs::directory_iterator(env.dir()))
    EXPECT_EQ(entry.path(), env.output_dir());
}

TEST(HostileInput, PasswordInTheUrlNeverReachesALogLine) {
  worker_env env;
  // The test server trusts every local connection, so the password is
  // accepted and ignored: the worker runs normally with it in its URL.
  const std::string password = "Pa55-w0rd-in-the-URL";
  auto url = env.url();
  auto at = url.find('@');
  ASSERT_NE(at, std::string::npos) << "the test URL has no user part";
  auto with_password = url.substr(0, at) + ":" + password + url.substr(at);
  env.insert_jobs(5);
  env.insert_job("");  // a failure to log as well

  for (const char* format : {"text", "json"}) {
    SCOPED_TRACE(format);
    auto run = run_worker({"run", "--exit-when-idle", "--log-format", format},
                          env.env({{"IMAGEN_DATABASE_URL", with_password},
                                   {"IMAGEN_LOG_LEVEL", "debug"}}),
                          seconds(60));
    auto status =
        run_worker({"status"}, {{"IMAGEN_DATABASE_URL", with_password}});
    auto flag = run_worker({"status", "--database-url", with_password}, {});

    EXPECT_EQ(run.status, 0) << run.all;
    EXPECT_EQ(status.status, 0) << status.all;
    EXPECT_EQ(flag.status, 0) << flag.all;
    EXPECT_EQ(run.all.find(password), std::string::npos) << run.all;
    EXPECT_EQ(status.all.find(password), std::string::npos) << status.all;
    EXPECT_EQ(flag.all.find(password), std::string::npos) << flag.all;
  }
  EXPECT_EQ(env.count("done"), 5);
  EXPECT_EQ(env.count("failed"), 1);
}

}  // namespace
}  // namespace imagen::test
