// sha256_hex against the published test vectors, and encode_png /
// inspect_png: a valid image is accepted with its size, anything cut,
// corrupted or foreign is refused.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

#include "core/png.hpp"
#include "core/sha256.hpp"

namespace imagen {
namespace {

std::string sha_of(const std::string& text) {
  return sha256_hex(reinterpret_cast<const std::uint8_t*>(text.data()),
                    text.size());
}

/// A `width` x `height` RGB image whose pixels depend on their position.
std::vector<std::uint8_t> pattern(int width, int height) {
  std::vector<std::uint8_t> rgb;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      rgb.push_back(static_cast<std::uint8_t>(x * 7));
      rgb.push_back(static_cast<std::uint8_t>(y * 13));
      rgb.push_back(static_cast<std::uint8_t>(x ^ y));
    }
  return rgb;
}

std::uint32_t read_be32(const std::vector<std::uint8_t>& bytes,
                        std::size_t at) {
  return (std::uint32_t{bytes[at]} << 24) |
         (std::uint32_t{bytes[at + 1]} << 16) |
         (std::uint32_t{bytes[at + 2]} << 8) | std::uint32_t{bytes[at + 3]};
}

void write_be32(std::vector<std::uint8_t>& bytes, std::size_t at,
                std::uint32_t value) {
  for (int i = 0; i < 4; ++i)
    bytes[at + static_cast<std::size_t>(i)] =
        static_cast<std::uint8_t>(value >> (24 - 8 * i));
}

/// Rewrites the CRC of the chunk starting at `at` so that only the
/// content of the chunk, not its checksum, is what a decoder objects to.
void fix_crc(std::vector<std::uint8_t>& bytes, std::size_t at) {
  std::uint32_t length = read_be32(bytes, at);
  uLong crc = crc32(0, bytes.data() + at + 4, 4 + length);
  write_be32(bytes, at + 8 + length, static_cast<std::uint32_t>(crc));
}

// ---- sha256 -------------------------------------------------------------

TEST(sha256, matches_the_fips_test_vectors) {
  EXPECT_EQ(sha_of("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha_of(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(sha256, of_a_million_a_matches_the_long_vector) {
  EXPECT_EQ(sha_of(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(sha256, is_lower_case_hex_of_64_characters) {
  auto hex = sha_of("imagen");
  ASSERT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
}

// ---- encode_png ---------------------------------------------------------

TEST(png, an_encoded_image_inspects_to_its_own_size) {
  auto bytes = encode_png(24, 16, pattern(24, 16));
  auto info = inspect_png(bytes);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->width, 24);
  EXPECT_EQ(info->height, 16);
}

TEST(png, a_one_pixel_image_is_valid) {
  auto info = inspect_png(encode_png(1, 1, {1, 2, 3}));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->width, 1);
  EXPECT_EQ(info->height, 1);
}

TEST(png, the_same_pixels_always_give_the_same_bytes) {
  auto a = encode_png(32, 8, pattern(32, 8));
  auto b = encode_png(32, 8, pattern(32, 8));
  EXPECT_EQ(a, b);
  auto other = pattern(32, 8);
  other[5] ^= 1;
  EXPECT_NE(encode_png(32, 8, other), a);
}

TEST(png, encoding_refuses_a_buffer_of_the_wrong_size) {
  EXPECT_THROW(encode_png(4, 4, std::vector<std::uint8_t>(47)),
               std::invalid_argument);
  EXPECT_THROW(encode_png(4, 4, std::vector<std::uint8_t>(49)),
               std::invalid_argument);
}

TEST(png, encoding_refuses_an_empty_or_negative_size) {
  EXPECT_THROW(encode_png(0, 4, {}), std::invalid_argument);
  EXPECT_THROW(encode_png(4, -1, {}), std::invalid_argument);
}

// A 4096x4096 encode takes seconds; the procedural backend's job timeout
// and cancel flag reach it through keep_going, asked between rows.
TEST(png, the_encoder_asks_to_go_on_between_rows_and_stops_when_told) {
  const int height = 3 * encode_check_rows + 5;
  int asked = 0;
  auto always = [&] {
    ++asked;
    return true;
  };
  auto bytes = encode_png(8, height, pattern(8, height), always);
  EXPECT_EQ(bytes, encode_png(8, height, pattern(8, height)));
  EXPECT_EQ(asked, 4);  // before rows 0, 32, 64 and 96

  asked = 0;
  auto until_third = [&] { return ++asked < 3; };
  EXPECT_THROW(encode_png(8, height, pattern(8, height), until_third),
               encode_stopped);
  EXPECT_EQ(asked, 3);
}

// ---- inspect_png refusals ----------------------------------------------

TEST(png, nothing_and_garbage_are_not_a_png) {
  EXPECT_FALSE(inspect_png({}));
  std::string text = "this is plainly a text file, not an image\n";
  EXPECT_FALSE(inspect_png({text.begin(), text.end()}));
  EXPECT_FALSE(inspect_png(std::vector<std::uint8_t>(4096, 0)));
}

TEST(png, the_signature_alone_is_not_a_png) {
  auto bytes = encode_png(8, 8, pattern(8, 8));
  bytes.resize(8);
  EXPECT_FALSE(inspect_png(bytes));
}

TEST(png, every_truncation_is_refused) {
  auto bytes = encode_png(16, 16, pattern(16, 16));
  ASSERT_TRUE(inspect_png(bytes));
  // Cutting anywhere, including inside IEND, loses a required part: the
  // image data, its checksum or the end chunk.
  for (std::size_t keep = 0; keep < bytes.size(); ++keep) {
    std::vector<std::uint8_t> cut(bytes.begin(),
                                  bytes.begin() + static_cast<long>(keep));
    EXPECT_FALSE(inspect_png(cut))
        << "accepted the first " << keep << " of " << bytes.size() << " bytes";
  }
}

TEST(png, a_flipped_bit_in_the_image_data_is_refused) {
  auto bytes = encode_png(16, 16, pattern(16, 16));
  // The chunks after the 8-byte signature: IHDR (25 bytes), then IDAT.
  const std::size_t idat = 8 + 25;
  ASSERT_EQ(std::string(bytes.begin() + idat + 4, bytes.begin() + idat + 8),
            "IDAT");
  auto corrupt = bytes;
  corrupt[idat + 8 + 10] ^= 0x40;
  EXPECT_FALSE(inspect_png(corrupt));
}

TEST(png, a_wrong_header_crc_is_refused) {
  auto bytes = encode_png(8, 8, pattern(8, 8));
  bytes[8 + 8 + 12] ^= 0x01;  // last byte of the IHDR CRC
  EXPECT_FALSE(inspect_png(bytes));
}

TEST(png, a_header_that_lies_about_the_size_is_refused) {
  auto bytes = encode_png(8, 8, pattern(8, 8));
  // Claim 64 rows with a correct CRC: the data runs out while decoding.
  write_be32(bytes, 8 + 8 + 4, 64);
  fix_crc(bytes, 8);
  EXPECT_FALSE(inspect_png(bytes));
}

TEST(png, an_absurd_size_is_refused_before_any_allocation) {
  auto bytes = encode_png(8, 8, pattern(8, 8));
  write_be32(bytes, 8 + 8, 1u << 30);
  write_be32(bytes, 8 + 8 + 4, 1u << 30);
  fix_crc(bytes, 8);
  EXPECT_FALSE(inspect_png(bytes));
}

}  // namespace
}  // namespace imagen
