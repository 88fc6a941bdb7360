#include "config/config.hpp"

namespace imagen {

int config::slot_count() const {
  if (!gpus.empty())
    return static_cast<int>(gpus.size()) * slots_per_gpu;
  return pool_size;
}

std::optional<int> config::slot_gpu(int index) const {
  if (gpus.empty())
    return std::nullopt;
  return gpus[static_cast<std::size_t>(index / slots_per_gpu) % gpus.size()];
}

}  // namespace imagen
