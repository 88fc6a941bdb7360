// What an end-to-end or fault test needs around the worker binary: a
// scratch database, a private output directory, the environment that
// points the binary at both, and checks of the rows and files it leaves.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/db.hpp"
#include "tests/support/process.hpp"

namespace imagen::test {

/// A file checked against the PNG decoder and hashed.
struct png_file {
  bool valid = false;  // a complete, valid PNG image
  int width = 0;
  int height = 0;
  std::string sha256;
  std::int64_t bytes = 0;
};

/// Reads and checks `path`; a missing file gives `valid == false`.
png_file inspect_png_file(const std::filesystem::path& path);

/// Writes a valid `width` x `height` PNG to `path` (for fake backends).
void write_png(const std::filesystem::path& path, int width, int height);

/// The absolute path of a fake command backend in tests/backends.
std::string backend_script(const std::string& name);

/// The TOML table of a command backend `name` running `argv`; strings are
/// written as TOML literal strings, so they must not contain a `'`.
std::string command_backend_toml(
    const std::string& name, const std::vector<std::string>& argv,
    const std::string& timeout = "30s",
    const std::map<std::string, std::string>& env = {});

/// A command backend `name` that sleeps `seconds` (a shell duration such as
/// "2" or "0.5") and then copies the PNG at `png` to {output}. Its
/// processes have `png` in their command line.
std::string slow_backend_toml(const std::string& name,
                              const std::string& seconds,
                              const std::filesystem::path& png);

/// One row of imagen.jobs with what the tests look at.
struct job_row {
  std::string id;
  std::string status;
  int attempt = 0;
  std::optional<int> width;
  std::optional<int> height;
  std::optional<std::string> image_id;
  std::optional<std::string> error;
  int error_entries = 0;  // jsonb_array_length(errors)
};

/// One row of imagen.images.
struct image_row {
  std::string id;
  std::string job_id;
  std::string owner_user_id;
  std::string uri;
  std::string sha256;
  std::int64_t bytes = 0;
  int width = 0;
  int height = 0;
  std::string mime;
};

class worker_env {
 public:
  explicit worker_env(
      scratch_database::schema schema = scratch_database::schema::migrated);

  const std::string& url() const { return db_.url(); }
  /// A private directory for configuration files and markers.
  std::filesystem::path dir() const { return dir_.path(); }
  /// Where the worker writes images (IMAGEN_OUTPUT_DIR).
  std::filesystem::path output_dir() const { return dir_.path() / "images"; }

  /// IMAGEN_DATABASE_URL and IMAGEN_OUTPUT_DIR, two slots, a 200ms poll
  /// interval and a 50ms retry base, then `extra` on top.
  env_changes env(const env_changes& extra = {}) const;

  /// Writes `toml` to a file in dir() and returns its path.
  std::string write_config(const std::string& name,
                           const std::string& toml) const;

  /// Inserts one row naming only owner and prompt, as a web application
  /// would, and returns its id.
  std::string insert_job(const std::string& prompt,
                         const std::string& owner = "user-1") const;

  /// Inserts `count` rows with `backend` (NULL when empty) in one
  /// statement; small 64x64 images keep the tests fast.
  std::vector<std::string> insert_jobs(int count,
                                       const std::string& backend = "",
                                       int size = 64) const;

  std::vector<job_row> jobs() const;
  job_row job(const std::string& id) const;
  std::vector<image_row> images() const;
  /// Rows in `status`.
  std::int64_t count(const std::string& status) const;

 private:
  scratch_database db_;
  temp_dir dir_;
};

/// Undoes the %XX escapes of a file:// URI's path.
std::string percent_decoded(const std::string& text);

/// Checks that `image` belongs to `job` and matches its file on disk:
/// the uri is a file:// path under `output_dir`, the file is a valid PNG
/// whose size, sha256 and dimensions are the ones registered. Adds a
/// GoogleTest failure for each mismatch.
void expect_image_matches_file(const image_row& image,
                               const std::filesystem::path& output_dir);

/// Files under `dir` that end in ".png", recursively, skipping hidden
/// directories (a command backend's scratch files live in `.tmp`).
std::vector<std::filesystem::path> png_files_under(
    const std::filesystem::path& dir);

}  // namespace imagen::test
