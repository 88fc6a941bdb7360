// A backend for benchmarks: a fixed tiny image after an optional delay,
// so that a benchmark measures the queue and not the generator.
#pragma once

#include <chrono>

#include "core/backend.hpp"

namespace imagen {

class null_backend final : public backend {
 public:
  explicit null_backend(std::chrono::milliseconds delay);

  /// Sleeps `delay` (checking cancel and deadline), then returns the fixed
  /// 8x8 PNG with its precomputed sha256.
  generation generate(const job& j, const slot_context& where,
                      std::chrono::steady_clock::time_point deadline) override;

  bool stores_images() const override { return false; }

 private:
  std::chrono::milliseconds delay_;
};

}  // namespace imagen
