// The administrative commands: migrate, enqueue and status.
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

const std::regex uuid_line(
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
    "[0-9a-f]{4}-[0-9a-f]{12}");

TEST(Cli, MigrateTwiceSucceedsAndTheSecondChangesNothing) {
  worker_env env(scratch_database::schema::empty);
  env_changes db{{"IMAGEN_DATABASE_URL", env.url()}};

  auto first = run_worker({"migrate"}, db);
  ASSERT_EQ(first.status, 0) << first.all;
  auto versions =
      scalar(env.url(), "SELECT count(*) FROM imagen.schema_migrations");
  auto second = run_worker({"migrate"}, db);

  ASSERT_EQ(second.status, 0) << second.all;
  // The bootstrap's IF NOT EXISTS notices are no news to the operator.
  EXPECT_EQ(second.all.find("skipping"), std::string::npos) << second.all;
  EXPECT_EQ(second.all.find("db.notice"), std::string::npos) << second.all;
  EXPECT_EQ(scalar(env.url(), "SELECT count(*) FROM imagen.schema_migrations"),
            versions);
  EXPECT_NE(versions, "0");
  // The schema works for the web application's insert.
  EXPECT_FALSE(env.insert_job("after migrate").empty());
}

TEST(Cli, MigrateTakesTheUrlFromTheFlag) {
  worker_env env(scratch_database::schema::empty);

  auto result = run_worker({"migrate", "--database-url", env.url()}, {});

  ASSERT_EQ(result.status, 0) << result.all;
  EXPECT_EQ(scalar(env.url(), "SELECT to_regclass('imagen.jobs') IS NOT NULL"),
            "t");
}

TEST(Cli, EnqueueCountFiveCreatesFiveRowsAndPrintsTheirIds) {
  worker_env env;

  auto result =
      run_worker({"enqueue", "--prompt", "five foxes", "--count", "5",
                  "--width", "64", "--height", "32", "--owner", "cli-test"},
                 env.env());

  ASSERT_EQ(result.status, 0) << result.all;
  auto printed = lines_of(result.out);
  ASSERT_EQ(printed.size(), 5u) << result.out;
  std::set<std::string> ids;
  for (const auto& line : printed) {
    EXPECT_TRUE(std::regex_match(line, uuid_line)) << line;
    ids.insert(line);
  }
  EXPECT_EQ(ids.size(), 5u);
  auto rows = query(env.url(),
                    "SELECT id, status, prompt, width, height, owner_user_id "
                    "FROM imagen.jobs");
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& r : rows) {
    EXPECT_EQ(ids.count(r[0].value_or("")), 1u) << r[0].value_or("");
    EXPECT_EQ(r[1], "pending");
    EXPECT_EQ(r[2], "five foxes");
    EXPECT_EQ(r[3], "64");
    EXPECT_EQ(r[4], "32");
    EXPECT_EQ(r[5], "cli-test");
  }
}

// A job for a backend no worker defines would only fail later, on the
// worker; enqueue refuses it at once, before it connects.
TEST(Cli, EnqueueRefusesABackendTheConfigurationDoesNotDefine) {
  worker_env env;
  auto config =
      env.write_config("worker.toml", "[backends.fast]\nkind = \"null\"\n");

  auto refused = run_worker(
      {"enqueue", "--prompt", "x", "--backend", "nope", "--config", config},
      env.env());
  // Port 1 on loopback refuses connections: exit 2, not 1, shows that
  // the refusal comes before the database.
  auto offline = run_worker({"enqueue", "--prompt", "x", "--backend", "nope",
                             "--database-url", "postgresql://u@127.0.0.1:1/x"},
                            env.env());
  auto accepted = run_worker(
      {"enqueue", "--prompt", "x", "--backend", "fast", "--config", config},
      env.env());

  EXPECT_EQ(refused.status, 2) << refused.all;
  EXPECT_NE(refused.all.find("\"nope\""), std::string::npos) << refused.all;
  EXPECT_NE(refused.all.find("fast"), std::string::npos) << refused.all;
  EXPECT_NE(refused.all.find("procedural"), std::string::npos) << refused.all;
  EXPECT_EQ(offline.status, 2) << offline.all;
  ASSERT_EQ(accepted.status, 0) << accepted.all;
  EXPECT_EQ(
      scalar(env.url(), "SELECT string_agg(backend, ',') FROM imagen.jobs"),
      "fast");
}

TEST(Cli, StatusAndEnqueueBeforeMigrateSayToMigrate) {
  worker_env env(scratch_database::schema::empty);
  env_changes db{{"IMAGEN_DATABASE_URL", env.url()}};

  for (const auto& args : std::vector<std::vector<std::string>>{
           {"status"}, {"enqueue", "--prompt", "too early"}}) {
    auto result = run_worker(args, db);
    EXPECT_EQ(result.status, 1) << args[0] << ": " << result.all;
    EXPECT_NE(result.all.find("run `imagen-worker migrate`"), std::string::npos)
        << args[0] << ": " << result.all;
  }
}

TEST(Cli, StatusPrintsTheCountOfEachStatus) {
  worker_env env;
  env.insert_jobs(3);
  exec(env.url(),
       "INSERT INTO imagen.jobs (owner_user_id, prompt, status, error) "
       "SELECT 'u', 'p', 'failed', 'e' FROM generate_series(1, 7)");

  auto result = run_worker({"status"}, env.env());

  ASSERT_EQ(result.status, 0) << result.all;
  // Each status with its count on one line, in any layout.
  EXPECT_TRUE(std::regex_search(result.out, std::regex("pending\\D*\\b3\\b")))
      << result.out;
  EXPECT_TRUE(std::regex_search(result.out, std::regex("failed\\D*\\b7\\b")))
      << result.out;
  EXPECT_NE(result.out.find("scheduled later: 0"), std::string::npos)
      << result.out;
}

}  // namespace
}  // namespace imagen::test
