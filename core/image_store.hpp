// The local image store: one PNG per job under the output directory,
// sharded by the first two characters of the job id, written atomically.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace imagen {

/// The directory under output.dir for files on their way: an image before
/// its rename into its shard, a command backend's output. A crash leaves
/// them there and nowhere else, so one directory is all there is to sweep
/// (sweep_scratch), not the whole image tree.
constexpr const char* scratch_subdir = ".tmp";

/// A tag for the name of a file in the scratch directory: unique per call
/// in this process, and unlike any of an earlier process with the same pid
/// (a restarted container's worker is often pid 1), whose young leftovers
/// the sweep keeps. "<pid>-<random salt>-<counter>".
std::string scratch_tag();

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

  /// Writes `png` to path_for(job_id, attempt): temporary file in the
  /// scratch directory, fsync, rename into the shard, fsync of the shard.
  /// When the scratch directory is another file system, the temporary
  /// file goes beside the image instead, from then on. Returns the
  /// artifact (file:// uri, sha256, size). Throws storage_error, also
  /// when `job_id` is not a canonical UUID.
  artifact store(const std::string& job_id, int attempt,
                 const std::vector<std::uint8_t>& png, int width, int height);

  /// `<dir>/<first 2 chars of id>/<id>-<attempt>.png`. Throws
  /// storage_error when `job_id` is not a canonical UUID, so no id can
  /// leave `dir`.
  ///
  /// DESIGN.md names the file `<id>.png`; the attempt is part of the name
  /// on purpose. A worker that was frozen past its lease may still finish
  /// its attempt after another worker completed the job: with one name
  /// per job its rename would replace the registered image with other
  /// bytes, and the database fence cannot stop a rename. With one name per
  /// attempt the late file lands beside it and is removed when its fenced
  /// write is refused (discard_image).
  std::string path_for(const std::string& job_id, int attempt) const;

  const std::string& dir() const { return dir_; }

  /// `<dir>/.tmp`.
  std::string scratch_dir() const;

 private:
  std::string dir_;
  /// The scratch directory turned out to be another file system (EXDEV);
  /// shared by copies of this store.
  std::shared_ptr<std::atomic<bool>> scratch_elsewhere_ =
      std::make_shared<std::atomic<bool>>(false);
};

/// `file://` and the absolute `path`, percent-encoded (RFC 8089): every
/// byte but letters, digits, '-', '.', '_', '~' and '/' becomes %XX.
std::string file_uri(const std::string& path);

/// Removes the file of an image whose outcome was refused by the fence
/// (a lost lease); an artifact with no local file is left alone. Returns
/// false when a file was there and could not be removed.
bool discard_image(const artifact& image);

/// What sweep_scratch did.
struct sweep_result {
  int removed = 0;
  int failed = 0;
  /// The first failure: the path and the system error.
  std::string first_error;
};

/// Removes the regular files directly in `dir` that nobody has written to
/// for longer than `older_than`: leftovers of a worker killed in the middle
/// of a job. Files younger than that, and subdirectories, stay: another
/// worker sharing the directory may be using them. A missing `dir` is an
/// empty one; a `dir` that is a symbolic link is not followed (one
/// failure, nothing removed).
sweep_result sweep_scratch(const std::string& dir,
                           std::chrono::seconds older_than);

/// True for 36 characters: hex digits with dashes at 8, 13, 18 and 23.
bool is_canonical_uuid(const std::string& text);

}  // namespace imagen
