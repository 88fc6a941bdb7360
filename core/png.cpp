#include "core/png.hpp"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include <png.h>
#include <zlib.h>

namespace imagen {

namespace {

// libpng reports errors by longjmp. The functions that call setjmp hold
// only plain data in locals; everything that must survive a jump lives
// behind a pointer, and no C++ object with a destructor is skipped.

/// Fixed so that the same pixels always give the same bytes; level 6
/// compresses gradients well and stays fast at 512x512.
constexpr int compression_level = 6;

/// Decoding refuses larger images: a PNG bomb must not exhaust memory.
constexpr png_uint_32 max_decoded_side = 1u << 15;

struct error_text {
  char text[200] = {};
};

[[noreturn]] void on_error(png_structp png, png_const_charp message) {
  auto* error = static_cast<error_text*>(png_get_error_ptr(png));
  if (error != nullptr)
    std::snprintf(error->text, sizeof error->text, "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

struct encode_state {
  int width;
  int height;
  const std::uint8_t* rgb;
  std::vector<std::uint8_t>* out;
  const std::function<bool()>* keep_going;
  /// Set when keep_going said no.
  bool stopped;
};

void on_write(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}

void on_flush(png_structp) {}

bool encode_rows(png_structp png, png_infop info, encode_state* s) {
  if (setjmp(png_jmpbuf(png)))
    return false;
  png_set_write_fn(png, s->out, on_write, on_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(s->width),
               static_cast<png_uint_32>(s->height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, compression_level);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
  png_write_info(png, info);
  const std::size_t stride = static_cast<std::size_t>(s->width) * 3;
  for (int y = 0; y < s->height; ++y) {
    // Asked here, between two libpng calls, so that no C++ exception
    // ever crosses libpng's frames.
    if (y % encode_check_rows == 0 && *s->keep_going && !(*s->keep_going)()) {
      s->stopped = true;
      return false;
    }
    png_write_row(png, s->rgb + stride * static_cast<std::size_t>(y));
  }
  png_write_end(png, nullptr);
  return true;
}

struct decode_state {
  const std::vector<std::uint8_t>* bytes;
  std::size_t offset;
  png_bytep row;
  png_uint_32 width;
  png_uint_32 height;
};

void on_read(png_structp png, png_bytep data, png_size_t length) {
  auto* s = static_cast<decode_state*>(png_get_io_ptr(png));
  if (s->bytes->size() - s->offset < length)
    png_error(png, "truncated");
  std::memcpy(data, s->bytes->data() + s->offset, length);
  s->offset += length;
}

bool decode_rows(png_structp png, png_infop info, decode_state* s) {
  if (setjmp(png_jmpbuf(png)))
    return false;
  png_set_read_fn(png, s, on_read);
  png_set_user_limits(png, max_decoded_side, max_decoded_side);
  png_read_info(png, info);
  s->width = png_get_image_width(png, info);
  s->height = png_get_image_height(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  s->row = static_cast<png_bytep>(png_malloc(png, png_get_rowbytes(png, info)));
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < s->height; ++y)
      png_read_row(png, s->row, nullptr);
  png_read_end(png, info);
  return true;
}

}  // namespace

std::vector<std::uint8_t> encode_png(int width, int height,
                                     const std::vector<std::uint8_t>& rgb,
                                     const std::function<bool()>& keep_going) {
  if (width <= 0 || height <= 0)
    throw std::invalid_argument("cannot encode a " + std::to_string(width) +
                                "x" + std::to_string(height) + " PNG");
  const auto expected =
      static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
  if (rgb.size() != expected)
    throw std::invalid_argument("RGB buffer of " + std::to_string(rgb.size()) +
                                " bytes for a " + std::to_string(width) + "x" +
                                std::to_string(height) + " image, expected " +
                                std::to_string(expected));

  std::vector<std::uint8_t> out;
  out.reserve(expected / 4 + 1024);
  error_text error;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error,
                                            on_error, on_warning);
  if (png == nullptr)
    throw std::runtime_error("libpng could not create a write struct");
  png_infop info = png_create_info_struct(png);
  encode_state state{width, height, rgb.data(), &out, &keep_going, false};
  bool ok = info != nullptr && encode_rows(png, info, &state);
  png_destroy_write_struct(&png, &info);
  if (state.stopped)
    throw encode_stopped("PNG encoding stopped by its caller");
  if (!ok)
    throw std::runtime_error(std::string{"PNG encoding failed: "} + error.text);
  return out;
}

std::optional<png_info> inspect_png(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() < 8 || png_sig_cmp(bytes.data(), 0, 8) != 0)
    return std::nullopt;
  error_text error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error,
                                           on_error, on_warning);
  if (png == nullptr)
    return std::nullopt;
  png_infop info = png_create_info_struct(png);
  decode_state state{&bytes, 0, nullptr, 0, 0};
  bool ok = info != nullptr && decode_rows(png, info, &state);
  if (state.row != nullptr)
    png_free(png, state.row);
  png_destroy_read_struct(&png, &info, nullptr);
  if (!ok || state.width == 0 || state.height == 0)
    return std::nullopt;
  return png_info{static_cast<int>(state.width),
                  static_cast<int>(state.height)};
}

}  // namespace imagen
