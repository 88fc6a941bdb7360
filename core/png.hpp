// PNG encoding and verification through libpng.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

namespace imagen {

/// encode_png gave up because its caller asked it to stop.
class encode_stopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Encodes 8-bit RGB pixels (`width * height * 3` bytes, rows top to
/// bottom) as a PNG. The same pixels always give the same bytes: fixed
/// compression level and filters, no time chunk. Throws
/// std::invalid_argument when the sizes do not match. A large image
/// takes seconds: `keep_going`, when given, is asked every
/// `encode_check_rows` rows, and a false answer ends the encoding with
/// encode_stopped.
std::vector<std::uint8_t> encode_png(
    int width, int height, const std::vector<std::uint8_t>& rgb,
    const std::function<bool()>& keep_going = {});

/// How many rows encode_png writes between two calls of keep_going.
inline constexpr int encode_check_rows = 32;

struct png_info {
  int width;
  int height;
};

/// Decodes `bytes` completely (every row, every CRC) and returns the
/// dimensions, or nothing when they are not one valid PNG image.
std::optional<png_info> inspect_png(const std::vector<std::uint8_t>& bytes);

}  // namespace imagen
