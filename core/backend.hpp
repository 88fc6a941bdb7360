// The backend interface: what turns a validated job into PNG bytes. A
// backend does not store anything; the pipeline does that.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "core/pipeline.hpp"

namespace imagen {

/// Used when a job leaves width, height or steps at zero (NULL).
constexpr int default_width = 512;
constexpr int default_height = 512;
constexpr int default_steps = 20;

/// Width, height and steps of `j` with zeros replaced by the defaults.
struct resolved_size {
  int width;
  int height;
  int steps;
};
resolved_size resolve_size(const job& j);

/// A generation that did not produce an image. `kind` is one of
/// failure_kind::backend, timeout or cancelled.
class backend_error : public std::runtime_error {
 public:
  backend_error(failure_kind kind, const std::string& what)
      : std::runtime_error(what), kind_(kind) {}

  failure_kind kind() const { return kind_; }

 private:
  failure_kind kind_;
};

/// What a backend returns: encoded PNG bytes and their dimensions.
struct generation {
  std::vector<std::uint8_t> png;
  int width = 0;
  int height = 0;
  /// Hex sha256 of `png` when the backend already knows it (the null
  /// backend's fixed image); empty means the pipeline computes it.
  std::string sha256;
  /// `png` is known to decode, to width x height: this process encoded it
  /// (null, procedural) or has decoded it already (command). The pipeline
  /// then does not decode it again. Decoding is what proves an image that
  /// a program wrote, and it costs: about 16 ms for a 1024 x 1024 picture,
  /// 7 us for the null backend's 8 x 8 one (a sixth of the worker's CPU
  /// per job in tools/bench).
  bool size_verified = false;
};

class backend {
 public:
  virtual ~backend() = default;

  /// Generates the image of `j` on the slot `where`. Returns before
  /// `deadline` or throws backend_error(timeout); throws
  /// backend_error(cancelled) soon after `where.cancel` is set.
  virtual generation generate(
      const job& j, const slot_context& where,
      std::chrono::steady_clock::time_point deadline) = 0;

  /// False for a backend whose images are not worth a file (benchmarks).
  virtual bool stores_images() const { return true; }

  /// The backend's own time limit; empty means the worker's job_timeout.
  virtual std::optional<std::chrono::milliseconds> timeout() const {
    return std::nullopt;
  }
};

}  // namespace imagen
