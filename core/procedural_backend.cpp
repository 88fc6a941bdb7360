#include "core/procedural_backend.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/png.hpp"

namespace imagen {

namespace {

// The picture: a two-colour gradient background, then one shape per step
// (soft discs, rings and wave bands, coarse to fine), then a vignette.
// Every choice comes from one random stream seeded by prompt, seed and
// style, so the same job always paints the same pixels.

struct color {
  float r, g, b;
};

/// splitmix64: small, fast and the same on every platform.
class random_stream {
 public:
  explicit random_stream(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  /// Uniform in [lo, hi).
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(next() >> 40) /
                    static_cast<float>(1ull << 24);
  }

 private:
  std::uint64_t state_;
};

std::uint64_t fnv1a(std::uint64_t hash, const void* data, std::size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::uint64_t job_hash(const job& j) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  hash = fnv1a(hash, j.prompt.data(), j.prompt.size() + 1);
  hash = fnv1a(hash, j.style.data(), j.style.size() + 1);
  std::uint64_t seed = static_cast<std::uint64_t>(j.seed);
  unsigned char seed_bytes[8];
  for (int i = 0; i < 8; ++i)
    seed_bytes[i] = static_cast<unsigned char>(seed >> (8 * i));
  return fnv1a(hash, seed_bytes, sizeof seed_bytes);
}

/// h in turns (0..1), s and v in 0..1.
color from_hsv(float h, float s, float v) {
  h = h - std::floor(h);
  float sector = h * 6.0f;
  int i = static_cast<int>(sector) % 6;
  float f = sector - std::floor(sector);
  float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (i) {
    case 0:
      return {v, t, p};
    case 1:
      return {q, v, p};
    case 2:
      return {p, v, t};
    case 3:
      return {p, q, v};
    case 4:
      return {t, p, v};
    default:
      return {v, p, q};
  }
}

/// Five colours: two for the background, three for the shapes. Known
/// styles pick the family; any other style only moves the random stream.
std::array<color, 5> palette(const std::string& style, random_stream& rng) {
  float hue = rng.uniform(0, 1);
  float spread = rng.uniform(0.05f, 0.35f);
  float sat_lo = 0.45f, sat_hi = 0.85f, val_lo = 0.55f, val_hi = 0.95f;
  float bg_val = rng.uniform(0.12f, 0.35f);
  if (style == "pastel") {
    sat_lo = 0.2f, sat_hi = 0.45f, val_lo = 0.85f, val_hi = 1.0f;
    bg_val = 0.8f;
  } else if (style == "neon") {
    sat_lo = 0.9f, sat_hi = 1.0f, val_lo = 0.9f, val_hi = 1.0f;
    bg_val = 0.06f, spread = 0.45f;
  } else if (style == "mono") {
    sat_lo = 0.0f, sat_hi = 0.12f, spread = 0.0f;
  } else if (style == "sunset") {
    hue = rng.uniform(0.93f, 1.05f), spread = 0.12f;
  } else if (style == "ocean") {
    hue = rng.uniform(0.5f, 0.62f), spread = 0.1f;
  }
  std::array<color, 5> colors;
  colors[0] = from_hsv(hue + spread, rng.uniform(sat_lo, sat_hi), bg_val);
  colors[1] = from_hsv(hue - spread, rng.uniform(sat_lo, sat_hi),
                       std::min(1.0f, bg_val + 0.25f));
  for (int i = 2; i < 5; ++i)
    colors[i] =
        from_hsv(hue + spread * static_cast<float>(i - 3) * 1.5f,
                 rng.uniform(sat_lo, sat_hi), rng.uniform(val_lo, val_hi));
  return colors;
}

class canvas {
 public:
  canvas(int width, int height)
      : width_(width),
        height_(height),
        pixels_(static_cast<std::size_t>(width) * height) {}

  int width() const { return width_; }
  int height() const { return height_; }

  void set(int x, int y, color c) { pixels_[index(x, y)] = c; }

  void blend(int x, int y, color c, float alpha) {
    color& p = pixels_[index(x, y)];
    p.r += (c.r - p.r) * alpha;
    p.g += (c.g - p.g) * alpha;
    p.b += (c.b - p.b) * alpha;
  }

  void scale(int x, int y, float k) {
    color& p = pixels_[index(x, y)];
    p.r *= k, p.g *= k, p.b *= k;
  }

  std::vector<std::uint8_t> to_rgb() const {
    std::vector<std::uint8_t> rgb;
    rgb.reserve(pixels_.size() * 3);
    auto byte = [](float v) {
      return static_cast<std::uint8_t>(
          std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
    };
    for (const color& p : pixels_) {
      rgb.push_back(byte(p.r));
      rgb.push_back(byte(p.g));
      rgb.push_back(byte(p.b));
    }
    return rgb;
  }

 private:
  std::size_t index(int x, int y) const {
    return static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) +
           static_cast<std::size_t>(x);
  }

  int width_;
  int height_;
  std::vector<color> pixels_;
};

void paint_background(canvas& c, color from, color to, random_stream& rng) {
  float angle = rng.uniform(0, 6.2831853f);
  float dx = std::cos(angle), dy = std::sin(angle);
  float ripple = rng.uniform(1.0f, 4.0f);
  float w = static_cast<float>(c.width()), h = static_cast<float>(c.height());
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) {
      float u = static_cast<float>(x) / w - 0.5f;
      float v = static_cast<float>(y) / h - 0.5f;
      float t = 0.5f + (u * dx + v * dy) +
                0.04f * std::sin(ripple * 6.2831853f * (u - v));
      t = std::clamp(t, 0.0f, 1.0f);
      t = t * t * (3 - 2 * t);
      c.set(x, y,
            {from.r + (to.r - from.r) * t, from.g + (to.g - from.g) * t,
             from.b + (to.b - from.b) * t});
    }
}

void paint_disc(canvas& c, float cx, float cy, float r, color col, float alpha,
                bool ring) {
  float thickness = std::max(1.0f, r * 0.12f);
  int x0 = std::max(0, static_cast<int>(cx - r - thickness));
  int x1 = std::min(c.width() - 1, static_cast<int>(cx + r + thickness));
  int y0 = std::max(0, static_cast<int>(cy - r - thickness));
  int y1 = std::min(c.height() - 1, static_cast<int>(cy + r + thickness));
  float r2 = r * r;
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      float ddx = static_cast<float>(x) + 0.5f - cx;
      float ddy = static_cast<float>(y) + 0.5f - cy;
      float d2 = ddx * ddx + ddy * ddy;
      float k;
      if (ring) {
        k = 1.0f - std::fabs(std::sqrt(d2) - r) / thickness;
      } else {
        k = 1.0f - d2 / r2;
      }
      if (k > 0)
        c.blend(x, y, col, alpha * k * k);
    }
}

void paint_wave(canvas& c, float cy, float amplitude, float wavelength,
                float phase, float thickness, color col, float alpha) {
  for (int x = 0; x < c.width(); ++x) {
    float yc =
        cy +
        amplitude *
            std::sin(static_cast<float>(x) / wavelength * 6.2831853f + phase);
    int y0 = std::max(0, static_cast<int>(yc - thickness));
    int y1 = std::min(c.height() - 1, static_cast<int>(yc + thickness));
    for (int y = y0; y <= y1; ++y) {
      float k = 1.0f - std::fabs(static_cast<float>(y) + 0.5f - yc) / thickness;
      if (k > 0)
        c.blend(x, y, col, alpha * k);
    }
  }
}

void paint_layer(canvas& c, int layer, const std::array<color, 5>& colors,
                 random_stream& rng) {
  float w = static_cast<float>(c.width()), h = static_cast<float>(c.height());
  // Layers go from coarse to fine, so extra steps refine the picture.
  float size = std::min(w, h) *
               (0.42f * std::pow(0.92f, static_cast<float>(layer)) + 0.03f);
  color col = colors[2 + rng.next() % 3];
  float alpha = rng.uniform(0.25f, 0.6f);
  float pick = rng.uniform(0, 1);
  if (pick < 0.6f) {
    paint_disc(c, rng.uniform(0, w), rng.uniform(0, h),
               size * rng.uniform(0.5f, 1.0f), col, alpha, false);
  } else if (pick < 0.8f) {
    paint_disc(c, rng.uniform(0, w), rng.uniform(0, h),
               size * rng.uniform(0.6f, 1.2f), col, alpha, true);
  } else {
    paint_wave(c, rng.uniform(0, h), size * rng.uniform(0.1f, 0.4f),
               w * rng.uniform(0.2f, 0.8f), rng.uniform(0, 6.2831853f),
               std::max(1.0f, size * rng.uniform(0.05f, 0.15f)), col, alpha);
  }
}

void paint_vignette(canvas& c) {
  float w = static_cast<float>(c.width()), h = static_cast<float>(c.height());
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) {
      float u = (static_cast<float>(x) + 0.5f) / w - 0.5f;
      float v = (static_cast<float>(y) + 0.5f) / h - 0.5f;
      c.scale(x, y, 1.0f - 0.55f * (u * u + v * v));
    }
}

}  // namespace

generation procedural_backend::generate(
    const job& j, const slot_context& where,
    std::chrono::steady_clock::time_point deadline) {
  auto size = resolve_size(j);
  // Asked between layers and, while the PNG is encoded (seconds for the
  // largest images), between rows. `stage` says where it stopped.
  auto check = [&](const std::string& stage) {
    if (where.cancelled())
      throw backend_error(failure_kind::cancelled,
                          "procedural backend was cancelled by shutdown");
    if (std::chrono::steady_clock::now() >= deadline)
      throw backend_error(failure_kind::timeout,
                          "procedural backend timed out " + stage);
  };
  auto at_layer = [&](int layer) {
    check("at layer " + std::to_string(layer) + " of " +
          std::to_string(size.steps));
  };

  random_stream rng{job_hash(j)};
  auto colors = palette(j.style, rng);
  canvas picture{size.width, size.height};
  paint_background(picture, colors[0], colors[1], rng);
  for (int layer = 0; layer < size.steps; ++layer) {
    at_layer(layer);
    paint_layer(picture, layer, colors, rng);
  }
  at_layer(size.steps);
  paint_vignette(picture);

  generation result;
  try {
    result.png = encode_png(size.width, size.height, picture.to_rgb(), [&] {
      return !where.cancelled() && std::chrono::steady_clock::now() < deadline;
    });
  } catch (const encode_stopped&) {
    check("while encoding the PNG");
    throw;  // not reached: the encoder stops only for a reason check sees
  }
  result.width = size.width;
  result.height = size.height;
  result.size_verified = true;
  return result;
}

}  // namespace imagen
