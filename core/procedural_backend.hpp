// The built-in backend: renders a deterministic picture on the CPU from
// the prompt, seed, style, size and steps. No model, no files.
#pragma once

#include "core/backend.hpp"

namespace imagen {

class procedural_backend final : public backend {
 public:
  /// Same job fields, same bytes. Each of prompt, seed, style, width,
  /// height and steps changes the picture; steps is the number of layers.
  generation generate(const job& j, const slot_context& where,
                      std::chrono::steady_clock::time_point deadline) override;
};

}  // namespace imagen
