#include "core/null_backend.hpp"

#include <algorithm>
#include <thread>

#include "core/png.hpp"
#include "core/sha256.hpp"

namespace imagen {

namespace {

constexpr int side = 8;

/// How often a sleeping null backend looks at the cancel flag.
constexpr std::chrono::milliseconds cancel_check{20};

/// The one image every null job returns, encoded and hashed once.
const generation& fixed_image() {
  static const generation image = [] {
    std::vector<std::uint8_t> rgb(side * side * 3);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        auto* p = &rgb[static_cast<std::size_t>((y * side + x) * 3)];
        p[0] = static_cast<std::uint8_t>(x * 32);
        p[1] = static_cast<std::uint8_t>(y * 32);
        p[2] = 160;
      }
    generation g;
    g.png = encode_png(side, side, rgb);
    g.width = side;
    g.height = side;
    g.sha256 = sha256_hex(g.png.data(), g.png.size());
    g.size_verified = true;
    return g;
  }();
  return image;
}

}  // namespace

null_backend::null_backend(std::chrono::milliseconds delay) : delay_(delay) {
  fixed_image();
}

generation null_backend::generate(
    const job&, const slot_context& where,
    std::chrono::steady_clock::time_point deadline) {
  using clock = std::chrono::steady_clock;
  // Every step sleeps to an absolute point, so the lateness of one wake-up
  // is not carried into the next: the job ends once, late by a single
  // wake-up, whatever the number of cancel checks on the way.
  const auto wake = clock::now() + delay_;
  for (auto now = clock::now(); now < wake; now = clock::now()) {
    if (where.cancelled())
      throw backend_error(failure_kind::cancelled,
                          "null backend was cancelled by shutdown");
    if (now >= deadline)
      throw backend_error(failure_kind::timeout,
                          "null backend timed out before its delay of " +
                              std::to_string(delay_.count()) + "ms ended");
    std::this_thread::sleep_until(
        std::min({wake, deadline, now + cancel_check}));
  }
  return fixed_image();
}

}  // namespace imagen
