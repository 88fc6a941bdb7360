// Several worker processes drain one queue: every job is claimed and done
// exactly once, with one image each.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

constexpr int workers = 4;
constexpr int slots = 4;
constexpr int jobs = 3000;

TEST(Concurrency, FourWorkersOfFourSlotsDrainEveryJobExactlyOnce) {
  worker_env env;
  env.insert_jobs(jobs, "", 8);

  std::vector<std::unique_ptr<process>> running;
  for (int i = 0; i < workers; ++i)
    running.push_back(start_worker(
        {"run", "--exit-when-idle", "--pool-size", std::to_string(slots)},
        env.env()));

  for (auto& worker : running)
    EXPECT_EQ(worker->wait_for_exit(seconds(300)), 0) << worker->output();
  EXPECT_EQ(env.count("done"), jobs);
  EXPECT_EQ(scalar(env.url(),
                   "SELECT count(*) FROM imagen.jobs "
                   "WHERE attempt <> 1 OR image_id IS NULL"),
            "0");
  auto images = env.images();
  ASSERT_EQ(images.size(), static_cast<std::size_t>(jobs));
  std::set<std::string> job_ids;
  for (const auto& image : images)
    job_ids.insert(image.job_id);
  EXPECT_EQ(job_ids.size(), static_cast<std::size_t>(jobs));
  EXPECT_EQ(scalar(env.url(),
                   "SELECT count(*) FROM imagen.jobs j JOIN imagen.images i "
                   "ON i.id = j.image_id AND i.job_id = j.id"),
            std::to_string(jobs));
  EXPECT_EQ(png_files_under(env.output_dir()).size(),
            static_cast<std::size_t>(jobs));
  // The work was shared: not a single process claimed every job (0 means
  // the worker clears claimed_by once a job is done).
  EXPECT_NE(
      scalar(env.url(), "SELECT count(DISTINCT claimed_by) FROM imagen.jobs"),
      "1");
}

}  // namespace
}  // namespace imagen::test
