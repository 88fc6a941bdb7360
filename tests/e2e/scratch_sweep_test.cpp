// What a worker killed in the middle of a job leaves in output.dir/.tmp is
// removed by the next worker that starts, once it is old enough to belong
// to nobody; what another worker may still be writing stays.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

TEST(ScratchSweep, AStartingWorkerRemovesLeftoversAndKeepsFreshFiles) {
  worker_env env;
  const fs::path scratch = env.output_dir() / ".tmp";
  fs::create_directories(scratch);
  const auto stale =
      scratch / "3fa85f64-5717-4562-b3fc-2c963f66afa6.png.tmp-1-1";
  const auto fresh = scratch / "out-99-1-1.png";
  std::ofstream(stale) << "half an image";
  std::ofstream(fresh) << "a generator is writing this";
  // Swept after a day at least, whatever the timeouts.
  fs::last_write_time(
      stale, fs::file_time_type::clock::now() - std::chrono::hours(25));
  env.insert_jobs(1);

  auto run = run_worker({"run", "--exit-when-idle"}, env.env(), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  EXPECT_EQ(env.count("done"), 1);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh));
  EXPECT_NE(run.all.find("event=storage.swept"), std::string::npos) << run.all;
  EXPECT_NE(run.all.find(" files=1 older_than=24h"), std::string::npos)
      << run.all;
}

TEST(ScratchSweep, AFileWhereTheScratchDirGoesIsNamedInTheError) {
  // output.dir itself is fine; the operator has to know that it is the
  // .tmp inside it that is in the way.
  worker_env env;
  fs::create_directories(env.output_dir());
  std::ofstream(env.output_dir() / ".tmp") << "in the way";

  auto run = run_worker({"run", "--exit-when-idle"}, env.env(), seconds(60));

  EXPECT_EQ(run.status, 2) << run.all;
  EXPECT_NE(run.all.find((env.output_dir() / ".tmp").string()),
            std::string::npos)
      << run.all;
}

}  // namespace
}  // namespace imagen::test
