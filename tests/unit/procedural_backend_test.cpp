// procedural_backend: the same job gives the same bytes, each input field
// changes them, the output is a valid PNG of the requested (or default)
// size, and the cancel flag and the deadline stop it.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/backend.hpp"
#include "core/png.hpp"
#include "core/procedural_backend.hpp"
#include "core/sha256.hpp"

namespace imagen {
namespace {

using clock = std::chrono::steady_clock;

job small_job() {
  job j;
  j.id = "5e0c2f4a-9b1d-4e3c-8a7f-1d2e3f4a5b6c";
  j.prompt = "a red fox in fresh snow";
  j.width = 64;
  j.height = 48;
  j.steps = 6;
  j.seed = 1234;
  j.style = "pastel";
  return j;
}

generation render(const job& j, const slot_context& where = {}) {
  procedural_backend backend;
  return backend.generate(j, where, clock::now() + std::chrono::minutes(1));
}

std::vector<std::uint8_t> bytes_of(const job& j) {
  return render(j).png;
}

/// Runs `j` and returns the backend_error kind and message; fails the test
/// when it succeeds.
backend_error error_of(const job& j, const slot_context& where,
                       clock::time_point deadline) {
  procedural_backend backend;
  try {
    backend.generate(j, where, deadline);
  } catch (const backend_error& e) {
    return e;
  }
  ADD_FAILURE() << "the procedural backend returned an image";
  return backend_error(failure_kind::none, "");
}

TEST(procedural_backend, the_same_job_gives_identical_bytes) {
  auto first = bytes_of(small_job());
  auto second = bytes_of(small_job());
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first, second);
}

TEST(procedural_backend, separate_backend_objects_agree) {
  // No hidden state: a second instance (another slot) paints the same.
  procedural_backend a;
  procedural_backend b;
  auto deadline = clock::now() + std::chrono::minutes(1);
  auto from_a = a.generate(small_job(), {}, deadline).png;
  a.generate(small_job(), {}, deadline);
  EXPECT_EQ(from_a, b.generate(small_job(), {}, deadline).png);
}

TEST(procedural_backend, the_job_id_and_owner_do_not_change_the_picture) {
  job other = small_job();
  other.id = "ffffffff-0000-4000-8000-000000000000";
  other.owner_user_id = "someone-else";
  other.attempt = 3;
  EXPECT_EQ(bytes_of(other), bytes_of(small_job()));
}

TEST(procedural_backend, each_input_field_changes_the_bytes) {
  const auto base = bytes_of(small_job());

  job j = small_job();
  j.width = 72;
  EXPECT_NE(bytes_of(j), base) << "width";

  j = small_job();
  j.height = 56;
  EXPECT_NE(bytes_of(j), base) << "height";

  j = small_job();
  j.steps = 7;
  EXPECT_NE(bytes_of(j), base) << "steps";

  j = small_job();
  j.seed = 1235;
  EXPECT_NE(bytes_of(j), base) << "seed";

  j = small_job();
  j.seed = -1234;
  EXPECT_NE(bytes_of(j), base) << "negative seed";

  j = small_job();
  j.style = "neon";
  EXPECT_NE(bytes_of(j), base) << "style";

  j = small_job();
  j.style = "some style it does not know";
  EXPECT_NE(bytes_of(j), base) << "unknown style";

  j = small_job();
  j.prompt = "a red fox in fresh snow.";
  EXPECT_NE(bytes_of(j), base) << "prompt";
}

TEST(procedural_backend, prompt_and_style_are_not_simply_concatenated) {
  // "ab" + "c" and "a" + "bc" must not collide.
  job one = small_job();
  one.prompt = "ab";
  one.style = "c";
  job two = small_job();
  two.prompt = "a";
  two.style = "bc";
  EXPECT_NE(bytes_of(one), bytes_of(two));
}

TEST(procedural_backend, the_output_is_a_png_of_the_requested_size) {
  job j = small_job();
  j.width = 40;
  j.height = 24;
  auto image = render(j);
  auto info = inspect_png(image.png);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->width, 40);
  EXPECT_EQ(info->height, 24);
  EXPECT_EQ(image.width, 40);
  EXPECT_EQ(image.height, 24);
}

TEST(procedural_backend, zero_size_and_steps_use_the_defaults) {
  job j = small_job();
  j.width = 0;
  j.height = 0;
  j.steps = 0;
  auto image = render(j);
  auto info = inspect_png(image.png);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->width, default_width);
  EXPECT_EQ(info->height, default_height);

  // Zero steps is the default number of steps, not no steps at all.
  job explicit_defaults = j;
  explicit_defaults.width = default_width;
  explicit_defaults.height = default_height;
  explicit_defaults.steps = default_steps;
  EXPECT_EQ(render(explicit_defaults).png, image.png);
}

TEST(procedural_backend, a_tiny_and_a_very_wide_image_are_valid) {
  job j = small_job();
  j.width = 8;
  j.height = 8;
  auto tiny = inspect_png(render(j).png);
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->width, 8);

  j.width = 1024;
  j.height = 8;
  j.steps = 30;
  auto wide = inspect_png(render(j).png);
  ASSERT_TRUE(wide);
  EXPECT_EQ(wide->width, 1024);
  EXPECT_EQ(wide->height, 8);
}

TEST(procedural_backend, a_non_ascii_prompt_renders_and_is_deterministic) {
  job j = small_job();
  j.prompt = "雪の中の赤い狐 🦊 — «überall» ñ";
  auto first = render(j);
  ASSERT_TRUE(inspect_png(first.png));
  EXPECT_EQ(first.png, render(j).png);
  EXPECT_NE(first.png, bytes_of(small_job()));
}

TEST(procedural_backend, the_backend_leaves_the_hash_to_the_pipeline) {
  auto image = render(small_job());
  // Either empty (the pipeline computes it) or the real hash.
  if (!image.sha256.empty()) {
    EXPECT_EQ(image.sha256, sha256_hex(image.png.data(), image.png.size()));
  }
  EXPECT_TRUE(procedural_backend{}.stores_images());
  EXPECT_FALSE(procedural_backend{}.timeout());
}

TEST(procedural_backend, a_set_cancel_flag_stops_it_as_cancelled) {
  std::atomic<bool> cancel{true};
  slot_context where;
  where.cancel = &cancel;
  auto error =
      error_of(small_job(), where, clock::now() + std::chrono::minutes(1));
  EXPECT_EQ(error.kind(), failure_kind::cancelled);
  EXPECT_NE(std::string{error.what()}.find("cancel"), std::string::npos)
      << error.what();
}

TEST(procedural_backend, a_clear_cancel_flag_changes_nothing) {
  std::atomic<bool> cancel{false};
  slot_context where;
  where.cancel = &cancel;
  where.gpu = 3;
  EXPECT_EQ(render(small_job(), where).png, bytes_of(small_job()));
}

TEST(procedural_backend, a_passed_deadline_is_a_timeout) {
  auto error =
      error_of(small_job(), {}, clock::now() - std::chrono::seconds(1));
  EXPECT_EQ(error.kind(), failure_kind::timeout);
  EXPECT_NE(std::string{error.what()}.find("timed out"), std::string::npos)
      << error.what();
}

}  // namespace
}  // namespace imagen
