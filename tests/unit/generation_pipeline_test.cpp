// generation_pipeline with the real backends: every way a job can end
// becomes one outcome of the right kind, and a success is a file that
// matches its artifact.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/command_backend.hpp"
#include "core/generation_pipeline.hpp"
#include "core/null_backend.hpp"
#include "core/png.hpp"
#include "core/procedural_backend.hpp"
#include "core/sha256.hpp"
#include "tests/support/process.hpp"

namespace imagen {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

job sample_job() {
  job j;
  j.id = "9d2c5b1a-7e3f-4a6b-8c9d-0e1f2a3b4c5d";
  j.owner_user_id = "owner-42";
  j.prompt = "a paper boat on a puddle";
  j.width = 48;
  j.height = 32;
  j.steps = 5;
  j.seed = 99;
  j.attempt = 2;
  j.max_attempts = 3;
  return j;
}

class generation_pipeline_test : public ::testing::Test {
 protected:
  /// A pipeline whose "procedural" is the default and whose "script"
  /// runs `script` under /bin/sh with $0 = {output}.
  std::unique_ptr<generation_pipeline> make(
      const std::string& script = "exit 1",
      std::chrono::milliseconds job_timeout = 30s,
      std::string output_dir = {}) {
    pipeline_settings settings;
    settings.default_backend = "procedural";
    settings.output_dir =
        output_dir.empty() ? output_.string() : std::move(output_dir);
    settings.job_timeout = job_timeout;

    command_spec spec;
    spec.name = "script";
    spec.argv = {"/bin/sh", "-c", script, "{output}"};
    spec.scratch_dir = (dir_.path() / "scratch").string();

    std::map<std::string, std::shared_ptr<backend>> backends;
    backends["procedural"] = std::make_shared<procedural_backend>();
    backends["null"] = std::make_shared<null_backend>(0ms);
    backends["script"] = std::make_shared<command_backend>(spec);
    return std::make_unique<generation_pipeline>(settings, backends);
  }

  std::vector<std::string> files_under(const fs::path& root) const {
    std::vector<std::string> found;
    if (!fs::exists(root))
      return found;
    for (const auto& entry : fs::recursive_directory_iterator(root))
      if (!entry.is_directory())
        found.push_back(fs::relative(entry.path(), root).string());
    return found;
  }

  std::string path(const std::string& name) const {
    return (dir_.path() / name).string();
  }

  test::temp_dir dir_{"imagen-pipeline-test"};
  fs::path output_ = dir_.path() / "images";
};

void expect_refers_to(const outcome& o, const job& j) {
  EXPECT_EQ(o.job.id, j.id);
  EXPECT_EQ(o.job.attempt, j.attempt);
  EXPECT_EQ(o.owner_user_id, j.owner_user_id);
}

// ---- success ------------------------------------------------------------

TEST_F(generation_pipeline_test, a_procedural_job_ends_as_a_matching_file) {
  job j = sample_job();
  auto o = make()->run(j, {});

  ASSERT_TRUE(o.ok()) << o.error;
  expect_refers_to(o, j);
  EXPECT_EQ(o.failure, failure_kind::none);
  EXPECT_EQ(o.error, "");
  const artifact& a = *o.image;
  EXPECT_EQ(a.path, (output_ / "9d" / (j.id + "-2.png")).string());
  EXPECT_EQ(a.uri, "file://" + a.path);
  auto bytes = file_bytes(a.path);
  EXPECT_EQ(a.sha256, sha256_hex(bytes.data(), bytes.size()));
  EXPECT_EQ(a.bytes, static_cast<std::int64_t>(bytes.size()));
  EXPECT_EQ(a.mime, "image/png");
  auto info = inspect_png(bytes);
  ASSERT_TRUE(info);
  EXPECT_EQ(a.width, 48);
  EXPECT_EQ(a.height, 32);
  EXPECT_EQ(info->width, 48);
  EXPECT_EQ(info->height, 32);
  // The pipeline stores exactly what the backend paints.
  procedural_backend direct;
  EXPECT_EQ(bytes,
            direct.generate(j, {}, std::chrono::steady_clock::now() + 30s).png);
}

TEST_F(generation_pipeline_test, a_named_backend_is_used) {
  auto png = encode_png(16, 8, std::vector<std::uint8_t>(16 * 8 * 3, 200));
  test::write_file(path("fixture.png"), std::string(png.begin(), png.end()));
  job j = sample_job();
  j.backend = "script";
  auto o = make("cp " + path("fixture.png") + " \"$0\"")->run(j, {});
  ASSERT_TRUE(o.ok()) << o.error;
  EXPECT_EQ(file_bytes(o.image->path), png);
  // The size recorded is the file's, not the job's request.
  EXPECT_EQ(o.image->width, 16);
  EXPECT_EQ(o.image->height, 8);
}

TEST_F(generation_pipeline_test, the_null_backend_writes_no_file) {
  job j = sample_job();
  j.backend = "null";
  auto o = make()->run(j, {});
  ASSERT_TRUE(o.ok()) << o.error;
  EXPECT_EQ(o.image->uri, "null:" + j.id);
  EXPECT_EQ(o.image->path, "");
  EXPECT_EQ(o.image->sha256.size(), 64u);
  EXPECT_EQ(o.image->width, 8);
  EXPECT_EQ(files_under(output_), std::vector<std::string>{});
}

// ---- failures -----------------------------------------------------------

TEST_F(generation_pipeline_test, invalid_input_is_permanent_and_runs_nothing) {
  job j = sample_job();
  j.backend = "script";
  j.width = 1001;
  auto o = make("touch " + path("ran"))->run(j, {});
  expect_refers_to(o, j);
  EXPECT_FALSE(o.ok());
  EXPECT_EQ(o.failure, failure_kind::invalid_input);
  EXPECT_FALSE(is_retryable(o.failure));
  EXPECT_EQ(o.error, "width 1001 is not a multiple of 8");
  EXPECT_FALSE(o.image);
  EXPECT_FALSE(fs::exists(path("ran")));
  EXPECT_EQ(files_under(output_), std::vector<std::string>{});
}

TEST_F(generation_pipeline_test, an_unknown_backend_is_invalid_input) {
  job j = sample_job();
  j.backend = "midjourney";
  auto o = make()->run(j, {});
  EXPECT_EQ(o.failure, failure_kind::invalid_input);
  EXPECT_NE(o.error.find("\"midjourney\""), std::string::npos) << o.error;
}

TEST_F(generation_pipeline_test, a_failing_command_is_a_retryable_failure) {
  job j = sample_job();
  j.backend = "script";
  auto o = make("echo 'no VRAM left' >&2; exit 4")->run(j, {});
  expect_refers_to(o, j);
  EXPECT_EQ(o.failure, failure_kind::backend);
  EXPECT_TRUE(is_retryable(o.failure));
  EXPECT_NE(o.error.find("status 4"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("no VRAM left"), std::string::npos) << o.error;
  EXPECT_EQ(files_under(output_), std::vector<std::string>{});
}

TEST_F(generation_pipeline_test, the_job_timeout_applies_to_a_backend) {
  job j = sample_job();
  j.backend = "script";
  auto o = make("sleep 1000", 1s)->run(j, {});
  EXPECT_EQ(o.failure, failure_kind::timeout);
  EXPECT_TRUE(is_retryable(o.failure));
  // The limit is the time left when the command started, a moment after
  // the pipeline began: about 1s, but not exactly.
  EXPECT_NE(o.error.find("timed out after "), std::string::npos) << o.error;
}

TEST_F(generation_pipeline_test, cancel_becomes_a_cancelled_outcome) {
  std::atomic<bool> cancel{true};
  slot_context where;
  where.cancel = &cancel;
  auto o = make()->run(sample_job(), where);
  EXPECT_EQ(o.failure, failure_kind::cancelled);
  EXPECT_FALSE(is_retryable(o.failure));
  EXPECT_EQ(files_under(output_), std::vector<std::string>{});
}

TEST_F(generation_pipeline_test, an_unwritable_output_dir_is_a_storage_error) {
  test::write_file(path("plain-file"), "x");
  auto o = make("exit 1", 30s, path("plain-file") + "/images")
               ->run(sample_job(), {});
  expect_refers_to(o, sample_job());
  EXPECT_EQ(o.failure, failure_kind::storage);
  EXPECT_TRUE(is_retryable(o.failure));
  EXPECT_NE(o.error.find(path("plain-file")), std::string::npos) << o.error;
  EXPECT_FALSE(o.image);
}

TEST_F(generation_pipeline_test, a_job_id_that_is_not_a_uuid_stores_nothing) {
  job j = sample_job();
  j.id = "../../escape";
  auto o = make()->run(j, {});
  EXPECT_EQ(o.failure, failure_kind::storage);
  EXPECT_NE(o.error.find("not a canonical UUID"), std::string::npos) << o.error;
  EXPECT_EQ(files_under(dir_.path()), std::vector<std::string>{});
}

TEST_F(generation_pipeline_test, slots_may_share_one_pipeline) {
  // Backends and the store are shared by every slot.
  auto pipeline = make();
  std::vector<outcome> outcomes(4);
  std::vector<std::thread> slots;
  for (int s = 0; s < 4; ++s)
    slots.emplace_back([&, s] {
      job j = sample_job();
      j.id[0] = static_cast<char>('a' + s);
      j.seed = s;
      slot_context where;
      where.slot = s;
      outcomes[static_cast<std::size_t>(s)] = pipeline->run(j, where);
    });
  for (auto& t : slots)
    t.join();
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.ok()) << o.error;
    auto bytes = file_bytes(o.image->path);
    EXPECT_EQ(o.image->sha256, sha256_hex(bytes.data(), bytes.size()));
  }
  EXPECT_EQ(files_under(output_).size(), 4u);
}

}  // namespace
}  // namespace imagen
