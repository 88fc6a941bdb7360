// PNG encoding and verification through libpng.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace imagen {

/// Encodes 8-bit RGB pixels (`width * height * 3` bytes, rows top to
/// bottom) as a PNG. The same pixels always give the same bytes: fixed
/// compression level and filters, no time chunk. Throws
/// std::invalid_argument when the sizes do not match.
std::vector<std::uint8_t> encode_png(int width, int height,
                                     const std::vector<std::uint8_t>& rgb);

struct png_info {
  int width;
  int height;
};

/// Decodes `bytes` completely (every row, every CRC) and returns the
/// dimensions, or nothing when they are not one valid PNG image.
std::optional<png_info> inspect_png(const std::vector<std::uint8_t>& bytes);

}  // namespace imagen
