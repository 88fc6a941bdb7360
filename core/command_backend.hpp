// A backend that runs an external generator (stable-diffusion.cpp's `sd`,
// a Python script) from an argv template. No shell is ever involved.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/backend.hpp"

namespace imagen {

struct command_spec {
  /// The backend's configured name, used in error messages.
  std::string name;
  /// Template; each element may contain {prompt} {negative_prompt}
  /// {width} {height} {steps} {seed} {model} {output} {device}.
  std::vector<std::string> argv;
  /// Zero or less: no own limit, the worker's job_timeout applies.
  std::chrono::milliseconds timeout{0};
  /// Added to (and overriding) the worker's environment. The slot's GPU
  /// is then set as CUDA_VISIBLE_DEVICES; a CPU slot gets it empty unless
  /// this table names a value.
  std::map<std::string, std::string> env;
  /// Where {output} files are made and removed again.
  std::string scratch_dir;
};

class command_backend final : public backend {
 public:
  explicit command_backend(command_spec spec);

  /// Runs the command in its own process group, stdin from /dev/null,
  /// keeps the last 4 KiB of its output for the error message and kills
  /// the whole group on timeout or cancel. Success is exit status 0 and a
  /// valid PNG at {output}.
  generation generate(const job& j, const slot_context& where,
                      std::chrono::steady_clock::time_point deadline) override;

  std::optional<std::chrono::milliseconds> timeout() const override;

  /// The argv of `j` on `where` with every placeholder replaced.
  std::vector<std::string> expand(const job& j, const slot_context& where,
                                  const std::string& output) const;

 private:
  command_spec spec_;
};

}  // namespace imagen
