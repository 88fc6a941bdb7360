// An output directory with spaces, '#' and '%': the images row's uri is a
// percent-encoded file:// URI that leads back to the file.
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

TEST(OddPaths, TheUriOfAnOutputDirWithSpacesHashAndPercentLeadsToTheFile) {
  worker_env env;
  auto out = env.dir() / "my images #1 %20";
  env.insert_jobs(2);

  auto run =
      run_worker({"run", "--exit-when-idle"},
                 env.env({{"IMAGEN_OUTPUT_DIR", out.string()}}), seconds(60));

  ASSERT_EQ(run.status, 0) << run.all;
  EXPECT_EQ(env.count("done"), 2);
  auto images = env.images();
  ASSERT_EQ(images.size(), 2u);
  for (const auto& image : images) {
    EXPECT_NE(image.uri.find("/my%20images%20%231%20%2520/"), std::string::npos)
        << image.uri;
    expect_image_matches_file(image, out);
  }
}

}  // namespace
}  // namespace imagen::test
