// Rows written by a web application with plain SQL, drained by
// `run --exit-when-idle`: every valid row ends done with an image that
// matches its file, every invalid row ends failed with an error naming
// the field and the value.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

constexpr const char* insert_full =
    "INSERT INTO imagen.jobs (owner_user_id, prompt, backend, width, height, "
    "steps, seed, style) VALUES ($1, $2, NULLIF($3, ''), "
    "NULLIF($4, '')::int, NULLIF($5, '')::int, NULLIF($6, '')::int, "
    "NULLIF($7, '')::bigint, NULLIF($8, '')) RETURNING id";

/// A row as the web application writes it; empty text is NULL.
struct web_row {
  std::string prompt;
  std::string backend, width, height, steps, seed, style;
};

std::string insert(const worker_env& env, const web_row& r) {
  return scalar(env.url(), insert_full,
                {"owner-7", r.prompt, r.backend, r.width, r.height, r.steps,
                 r.seed, r.style});
}

/// Error fragments an invalid row's error must contain: the field and the
/// value that was wrong.
struct invalid_row {
  web_row row;
  std::vector<std::string> error_mentions;
};

TEST(WebRows, ValidRowsAreDoneWithMatchingImagesInvalidRowsFail) {
  worker_env env;
  std::map<std::string, web_row> valid;
  auto add_valid = [&](web_row r) { valid[insert(env, r)] = r; };
  add_valid({"a lighthouse at dusk", "", "", "", "", "", ""});
  add_valid({"'; DROP TABLE imagen.jobs; --", "", "64", "64", "", "", ""});
  add_valid({"Robert\"); DELETE FROM imagen.images; -- \\ % _ $1", "", "32",
             "48", "3", "", ""});
  add_valid({"猫と桜 🌸🐈 قطة في الحديقة שלום", "", "96", "40", "", "7", ""});
  add_valid({"explicit everything", "procedural", "128", "72", "12",
             "9223372036854775807", "watercolor"});
  add_valid({"negative seed", "", "8", "8", "1", "-42", "ink"});
  add_valid({std::string(4000, 'x'), "", "16", "16", "", "", ""});

  std::map<std::string, invalid_row> invalid;
  auto add_invalid = [&](invalid_row r) { invalid[insert(env, r.row)] = r; };
  add_invalid({{"", "", "64", "64", "", "", ""}, {"prompt"}});
  add_invalid({{std::string(4001, 'y'), "", "", "", "", "", ""},
               {"prompt", "4001", "4000"}});
  add_invalid(
      {{"negative width", "", "-8", "64", "", "", ""}, {"width", "-8"}});
  add_invalid({{"odd width", "", "30", "64", "", "", ""}, {"width", "30"}});
  add_invalid({{"huge width", "", "5000", "64", "", "", ""},
               {"width", "5000", "4096"}});
  add_invalid(
      {{"negative steps", "", "64", "64", "-1", "", ""}, {"steps", "-1"}});
  add_invalid({{"too many steps", "", "64", "64", "151", "", ""},
               {"steps", "151", "150"}});
  add_invalid({{"unknown backend", "no-such-backend", "64", "64", "", "", ""},
               {"backend", "no-such-backend"}});

  auto run = run_worker({"run", "--exit-when-idle"}, env.env(), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  EXPECT_EQ(scalar(env.url(), "SELECT to_regclass('imagen.jobs') IS NOT NULL"),
            "t");
  auto jobs = env.jobs();
  ASSERT_EQ(jobs.size(), valid.size() + invalid.size());
  std::map<std::string, image_row> images;
  for (const auto& image : env.images())
    images[image.job_id] = image;
  EXPECT_EQ(images.size(), valid.size());

  for (const auto& job : jobs) {
    SCOPED_TRACE("job " + job.id);
    EXPECT_EQ(job.attempt, 1);
    if (auto it = valid.find(job.id); it != valid.end()) {
      EXPECT_EQ(job.status, "done") << job.error.value_or("");
      EXPECT_FALSE(job.error) << *job.error;
      ASSERT_TRUE(job.image_id);
      ASSERT_EQ(images.count(job.id), 1u);
      const auto& image = images[job.id];
      EXPECT_EQ(image.id, *job.image_id);
      EXPECT_EQ(image.owner_user_id, "owner-7");
      expect_image_matches_file(image, env.output_dir());
      // A row that names its size gets exactly that size.
      if (!it->second.width.empty()) {
        EXPECT_EQ(image.width, std::stoi(it->second.width));
      }
      if (!it->second.height.empty()) {
        EXPECT_EQ(image.height, std::stoi(it->second.height));
      }
      EXPECT_GT(image.width, 0);
      EXPECT_GT(image.height, 0);
    } else {
      ASSERT_EQ(invalid.count(job.id), 1u);
      EXPECT_EQ(job.status, "failed");
      EXPECT_FALSE(job.image_id);
      ASSERT_TRUE(job.error);
      for (const auto& mention : invalid[job.id].error_mentions) {
        EXPECT_NE(job.error->find(mention), std::string::npos)
            << "error \"" << *job.error << "\" does not mention " << mention;
      }
    }
  }
  EXPECT_EQ(env.count("pending"), 0);
  EXPECT_EQ(env.count("running"), 0);
  EXPECT_EQ(png_files_under(env.output_dir()).size(), valid.size());
}

TEST(WebRows, TheSameJobTwiceGivesTheSameBytesAndAnotherSeedDoesNot) {
  worker_env env;
  web_row same{"a red fox in snow", "", "80", "56", "10", "1234", "oil"};
  web_row other_seed = same;
  other_seed.seed = "1235";
  auto first = insert(env, same);
  auto second = insert(env, same);
  auto third = insert(env, other_seed);

  auto run = run_worker({"run", "--exit-when-idle"}, env.env(), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  std::map<std::string, image_row> by_job;
  for (const auto& image : env.images()) {
    expect_image_matches_file(image, env.output_dir());
    by_job[image.job_id] = image;
  }
  ASSERT_EQ(by_job.size(), 3u);
  EXPECT_EQ(by_job[first].sha256, by_job[second].sha256);
  EXPECT_NE(by_job[first].sha256, by_job[third].sha256);
  EXPECT_NE(by_job[first].uri, by_job[second].uri);
}

}  // namespace
}  // namespace imagen::test
