// The local image store: one PNG per job under the output directory,
// sharded by the first two characters of the job id, written atomically.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace imagen {

/// An image could not be written; retryable (failure_kind::storage). The
/// message names the path and the system error.
class storage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class image_store {
 public:
  /// `dir` is made absolute now; it is created on the first store.
  explicit image_store(std::string dir);

  /// Writes `png` to path_for(job_id): temporary file in the same
  /// directory, fsync, rename, fsync of the directory. Returns the
  /// artifact (file:// uri, sha256, size). Throws storage_error, also
  /// when `job_id` is not a canonical UUID.
  artifact store(const std::string& job_id,
                 const std::vector<std::uint8_t>& png, int width, int height);

  /// `<dir>/<first 2 chars of id>/<id>.png`. Throws storage_error when
  /// `job_id` is not a canonical UUID, so no id can leave `dir`.
  std::string path_for(const std::string& job_id) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

/// True for 36 characters: hex digits with dashes at 8, 13, 18 and 23.
bool is_canonical_uuid(const std::string& text);

}  // namespace imagen
