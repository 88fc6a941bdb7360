// The pipeline interface: one job in, one outcome out. Runs on a slot's
// thread and may block for as long as the backend takes.
#pragma once

#include <atomic>
#include <optional>

#include "core/job.hpp"

namespace imagen {

/// What a slot tells the pipeline about where it runs.
struct slot_context {
  int slot = 0;
  /// GPU index of the slot's device; empty for a CPU slot.
  std::optional<int> gpu;
  /// Set by shutdown when the grace is over: stop and report `cancelled`.
  const std::atomic<bool>* cancel = nullptr;

  bool cancelled() const {
    return cancel != nullptr && cancel->load(std::memory_order_relaxed);
  }
};

class pipeline {
 public:
  virtual ~pipeline() = default;

  /// Validates, generates and stores the image of `j`. Never throws for a
  /// failure of the job itself: that is an outcome. An exception means the
  /// slot itself broke.
  virtual outcome run(const job& j, const slot_context& where) = 0;
};

}  // namespace imagen
