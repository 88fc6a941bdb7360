// Domain types shared by every layer: the claimed job, the artifact a
// pipeline produces and the outcome that is written back to the queue.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace imagen {

/// The slice of an `imagen.jobs` row that a pipeline needs. NULL columns
/// arrive as empty strings or zero, which means "backend default".
struct job {
  std::string id;
  std::string owner_user_id;
  std::string prompt;
  std::string backend;
  std::string model;
  std::string style;
  int width = 0;
  int height = 0;
  int steps = 0;
  std::int64_t seed = 0;
  /// Which attempt this claim is (1 for the first run); part of the fence.
  int attempt = 0;
  int max_attempts = 0;
};

/// Validation limits applied to every job before it reaches a backend.
struct job_limits {
  int max_prompt_chars = 4000;
  int max_side = 4096;
  int max_steps = 150;
};

/// Identifies one claim of a job: the pair every fenced write checks.
struct job_ref {
  std::string id;
  int attempt = 0;
};

inline bool operator==(const job_ref& a, const job_ref& b) {
  return a.id == b.id && a.attempt == b.attempt;
}

inline job_ref ref_of(const job& j) {
  return job_ref{j.id, j.attempt};
}

/// A stored image, as registered in `imagen.images`.
struct artifact {
  std::string path;
  std::string uri;
  std::string sha256;
  std::int64_t bytes = 0;
  int width = 0;
  int height = 0;
  std::string mime;
};

/// Why an attempt failed; decides whether the job may run again.
enum class failure_kind {
  none,           // success
  invalid_input,  // permanent: the row itself is wrong
  backend,        // the generator failed; retryable
  timeout,        // the generator ran past its deadline; retryable
  storage,        // the image could not be written; retryable
  slot_crash,     // the pipeline slot died; retryable
  cancelled,      // stopped by shutdown; released, not counted
};

const char* to_string(failure_kind kind);

inline bool is_retryable(failure_kind kind) {
  return kind == failure_kind::backend || kind == failure_kind::timeout ||
         kind == failure_kind::storage || kind == failure_kind::slot_crash;
}

/// What one attempt of one job ended with. Exactly one of `image` (success)
/// and `error` (failure) is set.
struct outcome {
  job_ref job;
  std::string owner_user_id;
  std::optional<artifact> image;
  failure_kind failure = failure_kind::none;
  std::string error;
  std::int64_t elapsed_ms = 0;

  bool ok() const { return failure == failure_kind::none && image; }
};

outcome success(const job& j, artifact image, std::int64_t elapsed_ms);
outcome failure(const job& j, failure_kind kind, std::string error,
                std::int64_t elapsed_ms = 0);

}  // namespace imagen
