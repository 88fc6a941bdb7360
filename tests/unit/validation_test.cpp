// validate(): every kind of invalid row fails with a message that names
// the field and the value it saw; rows inside the limits, including the
// limits themselves and zero meaning "backend default", pass.
#include <optional>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/job.hpp"
#include "core/validation.hpp"

namespace imagen {
namespace {

const std::set<std::string> configured = {"procedural", "sdcpp"};
const std::string default_name = "procedural";

job valid_job() {
  job j;
  j.id = "0b7c4e5a-3f1d-4c2b-9a8e-6d5f4e3c2b1a";
  j.owner_user_id = "user-1";
  j.prompt = "a lighthouse at dusk";
  j.width = 512;
  j.height = 512;
  j.steps = 20;
  j.seed = 7;
  return j;
}

std::optional<std::string> check(const job& j,
                                 const job_limits& limits = job_limits{}) {
  return validate(j, limits, configured, default_name);
}

/// The error for `j`; fails the test when `j` is accepted.
std::string error_of(const job& j, const job_limits& limits = job_limits{}) {
  auto error = check(j, limits);
  if (!error) {
    ADD_FAILURE() << "validate accepted the job";
    return "";
  }
  return *error;
}

std::string repeated(const std::string& piece, int times) {
  std::string text;
  for (int i = 0; i < times; ++i)
    text += piece;
  return text;
}

// ---- rows that may run ------------------------------------------------

TEST(validation, a_plain_row_passes) {
  EXPECT_EQ(check(valid_job()), std::nullopt);
}

TEST(validation, zero_size_and_steps_mean_backend_default_and_pass) {
  job j = valid_job();
  j.width = 0;
  j.height = 0;
  j.steps = 0;
  j.seed = 0;
  j.model.clear();
  j.style.clear();
  EXPECT_EQ(check(j), std::nullopt);
}

TEST(validation, empty_backend_means_the_default_backend) {
  job j = valid_job();
  j.backend.clear();
  EXPECT_EQ(check(j), std::nullopt);

  // The default must itself be configured, or the row cannot run.
  auto error = validate(j, job_limits{}, {"sdcpp"}, "missing");
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("missing"), std::string::npos) << *error;
}

TEST(validation, a_configured_backend_named_by_the_row_passes) {
  job j = valid_job();
  j.backend = "sdcpp";
  EXPECT_EQ(check(j), std::nullopt);
}

TEST(validation, every_limit_itself_is_allowed) {
  job_limits limits;
  job j = valid_job();
  j.prompt = repeated("x", limits.max_prompt_chars);
  j.width = limits.max_side;
  j.height = limits.max_side;
  j.steps = limits.max_steps;
  EXPECT_EQ(check(j, limits), std::nullopt);
}

TEST(validation, the_limits_come_from_the_argument_not_constants) {
  job_limits tight;
  tight.max_prompt_chars = 5;
  tight.max_side = 64;
  tight.max_steps = 3;
  job j = valid_job();
  j.prompt = "abcde";
  j.width = 64;
  j.height = 8;
  j.steps = 3;
  EXPECT_EQ(check(j, tight), std::nullopt);

  j.prompt = "abcdef";
  EXPECT_NE(error_of(j, tight).find("prompt length 6 exceeds the limit 5"),
            std::string::npos);
}

TEST(validation, the_prompt_limit_counts_characters_not_bytes) {
  job_limits limits;
  job j = valid_job();
  // "é" is two bytes, "雪" three and "🌊" four: the byte length is far
  // above the limit while the character count is exactly at it.
  j.prompt = repeated("é", limits.max_prompt_chars);
  EXPECT_EQ(check(j, limits), std::nullopt);
  j.prompt = repeated("雪", limits.max_prompt_chars);
  EXPECT_EQ(check(j, limits), std::nullopt);
  j.prompt = repeated("🌊", limits.max_prompt_chars);
  EXPECT_EQ(check(j, limits), std::nullopt);

  j.prompt = repeated("🌊", limits.max_prompt_chars + 1);
  EXPECT_EQ(error_of(j, limits), "prompt length 4001 exceeds the limit 4000");
}

TEST(validation, leading_and_trailing_whitespace_does_not_make_a_prompt_blank) {
  job j = valid_job();
  j.prompt = "  \t cat\n";
  EXPECT_EQ(check(j), std::nullopt);
}

// ---- prompt -----------------------------------------------------------

TEST(validation, an_empty_prompt_is_refused) {
  job j = valid_job();
  j.prompt.clear();
  EXPECT_EQ(error_of(j), "prompt is empty");
}

TEST(validation, a_prompt_of_only_whitespace_is_refused) {
  job j = valid_job();
  j.prompt = " \t\n\u3000\u00a0";
  auto error = error_of(j);
  EXPECT_NE(error.find("prompt"), std::string::npos) << error;
  EXPECT_NE(error.find("blank"), std::string::npos) << error;
}

TEST(validation, a_prompt_one_character_over_the_limit_is_refused) {
  job j = valid_job();
  j.prompt = repeated("x", 4001);
  EXPECT_EQ(error_of(j), "prompt length 4001 exceeds the limit 4000");
}

TEST(validation, a_prompt_that_is_not_utf8_is_refused_with_the_byte) {
  job j = valid_job();
  j.prompt = std::string{"ab\xff"} + "cd";
  EXPECT_EQ(error_of(j), "prompt is not valid UTF-8 (byte 2)");

  // A multi-byte sequence cut off by the end of the text.
  j.prompt = std::string{"abc\xe9\x9b"};
  EXPECT_EQ(error_of(j), "prompt is not valid UTF-8 (byte 3)");

  // An overlong encoding of "/" and an encoded surrogate.
  j.prompt = std::string{"\xc0\xaf"};
  EXPECT_EQ(error_of(j), "prompt is not valid UTF-8 (byte 0)");
  j.prompt = std::string{"x\xed\xa0\x80"};
  EXPECT_EQ(error_of(j), "prompt is not valid UTF-8 (byte 1)");
}

TEST(validation, a_prompt_with_a_nul_character_is_refused) {
  job j = valid_job();
  j.prompt = std::string{"cat\0dog", 7};
  EXPECT_EQ(error_of(j), "prompt contains a NUL character (byte 3)");
}

// ---- width and height -------------------------------------------------

TEST(validation, a_negative_width_names_field_and_value) {
  job j = valid_job();
  j.width = -512;
  EXPECT_EQ(error_of(j), "width -512 is negative");
}

TEST(validation, a_negative_height_names_field_and_value) {
  job j = valid_job();
  j.height = -8;
  EXPECT_EQ(error_of(j), "height -8 is negative");
}

TEST(validation, a_width_not_a_multiple_of_8_is_refused) {
  job j = valid_job();
  j.width = 513;
  EXPECT_EQ(error_of(j), "width 513 is not a multiple of 8");
}

TEST(validation, a_height_not_a_multiple_of_8_is_refused) {
  job j = valid_job();
  j.height = 4;
  EXPECT_EQ(error_of(j), "height 4 is not a multiple of 8");
}

TEST(validation, a_width_above_max_side_is_refused) {
  job j = valid_job();
  j.width = 4104;
  EXPECT_EQ(error_of(j), "width 4104 exceeds the limit 4096");
}

TEST(validation, a_height_above_max_side_is_refused) {
  job j = valid_job();
  j.height = 8192;
  EXPECT_EQ(error_of(j), "height 8192 exceeds the limit 4096");
}

// ---- steps ------------------------------------------------------------

TEST(validation, negative_steps_are_refused) {
  job j = valid_job();
  j.steps = -1;
  EXPECT_EQ(error_of(j), "steps -1 is negative");
}

TEST(validation, steps_above_max_steps_are_refused) {
  job j = valid_job();
  j.steps = 151;
  EXPECT_EQ(error_of(j), "steps 151 exceeds the limit 150");
}

// ---- backend ----------------------------------------------------------

TEST(validation, an_unknown_backend_is_refused_and_named) {
  job j = valid_job();
  j.backend = "dall-e";
  auto error = error_of(j);
  EXPECT_NE(error.find("unknown backend"), std::string::npos) << error;
  EXPECT_NE(error.find("\"dall-e\""), std::string::npos) << error;
  // The operator sees what would have been accepted.
  EXPECT_NE(error.find("procedural"), std::string::npos) << error;
  EXPECT_NE(error.find("sdcpp"), std::string::npos) << error;
}

TEST(validation, backend_names_are_matched_exactly) {
  job j = valid_job();
  j.backend = "Procedural";
  EXPECT_NE(error_of(j).find("\"Procedural\""), std::string::npos);
  j.backend = "procedural ";
  EXPECT_NE(error_of(j).find("\"procedural \""), std::string::npos);
}

TEST(validation, with_no_backends_configured_every_row_is_refused) {
  job j = valid_job();
  auto error = validate(j, job_limits{}, {}, default_name);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("none"), std::string::npos) << *error;
}

// ---- utf8_length --------------------------------------------------------

TEST(validation, utf8_length_counts_code_points) {
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("é雪🌊"), 3u);
  EXPECT_EQ(utf8_length(std::string{"\xf0\x9f\x8c"}), std::nullopt);
  EXPECT_EQ(utf8_length(std::string{"\x80"}), std::nullopt);
  // Above U+10FFFF.
  EXPECT_EQ(utf8_length(std::string{"\xf4\x90\x80\x80"}), std::nullopt);
}

}  // namespace
}  // namespace imagen
