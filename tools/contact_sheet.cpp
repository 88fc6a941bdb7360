// imagen-contact-sheet OUT.png IN.png...: one PNG with a thumbnail of every
// input, in a grid, so a demo run can be checked at a glance. Used by
// tools/demo; not part of the worker.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/png.hpp"

namespace {

/// Thumbnails fit in a square of this side, keeping their aspect ratio.
constexpr int cell = 192;
constexpr int gap = 8;
constexpr std::uint8_t background = 32;

struct rgb_image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  // 3 bytes per pixel, rows top down
};

rgb_image read_rgb(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str()))
    throw std::runtime_error(path + ": " + image.message);
  image.format = PNG_FORMAT_RGB;
  rgb_image result;
  result.width = static_cast<int>(image.width);
  result.height = static_cast<int>(image.height);
  result.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, result.pixels.data(), 0, nullptr))
    throw std::runtime_error(path + ": " + image.message);
  return result;
}

/// Area-averages `source` into a w x h image, so that detail shrinks
/// without the aliasing of picking single pixels.
rgb_image shrink(const rgb_image& source, int w, int h) {
  rgb_image out{w, h, std::vector<std::uint8_t>(std::size_t(w) * h * 3)};
  for (int y = 0; y < h; ++y) {
    int y0 = y * source.height / h;
    int y1 = std::max(y0 + 1, (y + 1) * source.height / h);
    for (int x = 0; x < w; ++x) {
      int x0 = x * source.width / w;
      int x1 = std::max(x0 + 1, (x + 1) * source.width / w);
      for (int c = 0; c < 3; ++c) {
        long sum = 0;
        for (int sy = y0; sy < y1; ++sy)
          for (int sx = x0; sx < x1; ++sx)
            sum += source.pixels[(std::size_t(sy) * source.width + sx) * 3 + c];
        out.pixels[(std::size_t(y) * w + x) * 3 + c] =
            static_cast<std::uint8_t>(sum / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

void paste(rgb_image& sheet, const rgb_image& tile, int left, int top) {
  for (int y = 0; y < tile.height; ++y)
    std::copy_n(&tile.pixels[std::size_t(y) * tile.width * 3], tile.width * 3,
                &sheet.pixels[(std::size_t(top + y) * sheet.width + left) * 3]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: imagen-contact-sheet OUT.png IN.png...\n");
    return 2;
  }
  const std::string out_path = argv[1];
  const int count = argc - 2;
  const int columns = static_cast<int>(std::ceil(std::sqrt(count)));
  const int rows = (count + columns - 1) / columns;

  rgb_image sheet;
  sheet.width = gap + columns * (cell + gap);
  sheet.height = gap + rows * (cell + gap);
  sheet.pixels.assign(std::size_t(sheet.width) * sheet.height * 3, background);

  try {
    for (int i = 0; i < count; ++i) {
      auto image = read_rgb(argv[i + 2]);
      // Small images are shown at their own size, never blown up.
      double scale =
          std::min(1.0, double(cell) / std::max(image.width, image.height));
      int w = std::max(1, static_cast<int>(image.width * scale));
      int h = std::max(1, static_cast<int>(image.height * scale));
      auto tile = shrink(image, w, h);
      int left = gap + (i % columns) * (cell + gap) + (cell - w) / 2;
      int top = gap + (i / columns) * (cell + gap) + (cell - h) / 2;
      paste(sheet, tile, left, top);
    }
    auto png = imagen::encode_png(sheet.width, sheet.height, sheet.pixels);
    std::ofstream out(out_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(png.data()),
              static_cast<std::streamsize>(png.size()));
    if (!out.flush())
      throw std::runtime_error(out_path + ": cannot be written");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "imagen-contact-sheet: %s\n", e.what());
    return 1;
  }
  return 0;
}
