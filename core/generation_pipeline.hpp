// The real pipeline: validate, pick the backend, generate, check the PNG,
// store it, and turn all of that into one outcome.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "core/backend.hpp"
#include "core/image_store.hpp"
#include "core/job.hpp"
#include "core/pipeline.hpp"

namespace imagen {

struct pipeline_settings {
  job_limits limits;
  std::string default_backend;
  std::string output_dir;
  /// Applies to a backend without its own timeout.
  std::chrono::milliseconds job_timeout{5 * 60 * 1000};
};

class generation_pipeline final : public pipeline {
 public:
  /// `backends` maps configured names to backends; they are shared by
  /// every slot and must be safe to call from several threads.
  generation_pipeline(pipeline_settings settings,
                      std::map<std::string, std::shared_ptr<backend>> backends);

  /// Never throws for a failure of the job: invalid input, backend,
  /// timeout, cancel and storage errors all become outcomes.
  outcome run(const job& j, const slot_context& where) override;

 private:
  pipeline_settings settings_;
  std::map<std::string, std::shared_ptr<backend>> backends_;
  std::set<std::string> names_;
  image_store store_;
};

}  // namespace imagen
