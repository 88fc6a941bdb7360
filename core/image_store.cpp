#include "core/image_store.hpp"

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.hpp"
#include "core/sha256.hpp"

namespace imagen {

namespace fs = std::filesystem;

namespace {

constexpr const char* png_mime = "image/png";

[[noreturn]] void fail(const std::string& what, const std::string& path,
                       int error) {
  throw storage_error(what + " " + path + ": " + std::strerror(error));
}

/// Owns a file descriptor; closes it unless released.
class descriptor {
 public:
  explicit descriptor(int fd) : fd_(fd) {}
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  ~descriptor() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  int get() const { return fd_; }

  /// Closes now and reports the error of close itself, which for some
  /// file systems is where a failed write shows up.
  int close() {
    int result = ::close(fd_);
    fd_ = -1;
    return result == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

void write_all(int fd, const std::vector<std::uint8_t>& bytes,
               const std::string& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      fail("cannot write", path, errno);
    done += static_cast<std::size_t>(n);
  }
}

void sync_directory(const std::string& dir) {
  descriptor fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (fd.get() < 0)
    fail("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0)
    fail("cannot fsync directory", dir, errno);
}

/// `text` for an error message: printable ASCII as is, other bytes as
/// \xNN, at most 64 bytes of it. The message ends up in a text column,
/// which refuses NUL bytes and invalid UTF-8.
std::string shown(const std::string& text) {
  constexpr std::size_t limit = 64;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0x0f];
    }
  }
  if (text.size() > limit)
    out += "...";
  return out;
}

std::string checked_id(const std::string& job_id) {
  if (!is_canonical_uuid(job_id))
    throw storage_error("job id \"" + shown(job_id) +
                        "\" is not a canonical UUID; refusing to store");
  return job_id;
}

/// Writes `png` to the new file `temporary`, syncs it and renames it to
/// `path`. Returns 0, or EXDEV when the two are on different file systems
/// (the temporary is gone again); throws storage_error on anything else.
int write_and_rename(const std::string& temporary, const std::string& path,
                     const std::vector<std::uint8_t>& png) {
  descriptor fd{
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
  if (fd.get() < 0)
    fail("cannot create", temporary, errno);
  try {
    write_all(fd.get(), png, temporary);
    if (::fsync(fd.get()) != 0)
      fail("cannot fsync", temporary, errno);
    if (int close_error = fd.close())
      fail("cannot close", temporary, close_error);
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
      int error = errno;
      if (error != EXDEV)
        fail("cannot rename " + temporary + " to", path, error);
      ::unlink(temporary.c_str());
      return EXDEV;
    }
  } catch (...) {
    ::unlink(temporary.c_str());
    throw;
  }
  return 0;
}

}  // namespace

bool is_canonical_uuid(const std::string& text) {
  if (text.size() != 36)
    return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
               (c >= 'A' && c <= 'F');
    if (dash_position ? c != '-' : !hex)
      return false;
  }
  return true;
}

image_store::image_store(std::string dir) {
  std::error_code error;
  fs::path absolute = fs::absolute(dir, error);
  dir_ = (error ? fs::path{dir} : absolute).lexically_normal().string();
  while (dir_.size() > 1 && dir_.back() == '/')
    dir_.pop_back();
}

std::string image_store::path_for(const std::string& job_id,
                                  int attempt) const {
  std::string id = checked_id(job_id);
  return dir_ + "/" + id.substr(0, 2) + "/" + id + "-" +
         std::to_string(attempt) + ".png";
}

artifact image_store::store(const std::string& job_id, int attempt,
                            const std::vector<std::uint8_t>& png, int width,
                            int height) {
  const std::string path = path_for(job_id, attempt);
  const std::string shard = dir_ + "/" + job_id.substr(0, 2);
  const std::string scratch = scratch_dir();

  for (const auto& needed : {shard, scratch}) {
    std::error_code error;
    fs::create_directories(needed, error);
    if (error)
      throw storage_error("cannot create directory " + needed + ": " +
                          error.message());
  }

  // Two slots that somehow store the same job never write into one file.
  const std::string suffix = ".png.tmp-" + scratch_tag();
  bool stored = false;
  if (!scratch_elsewhere_->load()) {
    stored = write_and_rename(scratch + "/" + job_id + suffix, path, png) == 0;
    // EXDEV: .tmp is another file system (a mount, a link to a faster
    // disk) and the rename cannot cross it. From now on write beside the
    // image, as before there was a scratch directory; a crash may leave
    // that file where no sweep looks.
    if (!stored && !scratch_elsewhere_->exchange(true))
      log::warn("storage.scratch_elsewhere",
                {{"dir", scratch},
                 {"error",
                  "on another file system than the images; "
                  "temporary files go beside each image"}});
  }
  if (!stored) {
    const std::string beside = shard + "/." + job_id + suffix;
    if (int error = write_and_rename(beside, path, png))
      fail("cannot rename " + beside + " to", path, error);
  }
  sync_directory(shard);

  artifact result;
  result.path = path;
  result.uri = file_uri(path);
  result.sha256 = sha256_hex(png.data(), png.size());
  result.bytes = static_cast<std::int64_t>(png.size());
  result.width = width;
  result.height = height;
  result.mime = png_mime;
  return result;
}

std::string scratch_tag() {
  static std::atomic<unsigned long> counter{0};
  static const std::uint64_t salt = std::random_device{}();
  return std::to_string(::getpid()) + "-" + std::to_string(salt) + "-" +
         std::to_string(++counter);
}

std::string image_store::scratch_dir() const {
  return dir_ + "/" + scratch_subdir;
}

sweep_result sweep_scratch(const std::string& dir,
                           std::chrono::seconds older_than) {
  sweep_result result;
  auto note_failure = [&](const fs::path& path, const std::error_code& e) {
    if (result.failed++ == 0)
      result.first_error = path.string() + ": " + e.message();
  };
  std::error_code error;
  // The directory itself is not followed either when it is a link: an
  // operator who pointed .tmp at a shared directory (/tmp, another disk)
  // would otherwise lose its old files, which are not the worker's.
  if (fs::symlink_status(dir, error).type() == fs::file_type::symlink) {
    result.failed = 1;
    result.first_error =
        dir +
        ": is a symbolic link; not swept, the files it leads to may "
        "not be the worker's";
    return result;
  }
  fs::directory_iterator entries(dir, error);
  if (error) {
    if (error != std::errc::no_such_file_or_directory)
      note_failure(dir, error);
    return result;
  }
  // The file system's clock, as the files' times are.
  const auto cutoff = fs::file_time_type::clock::now() - older_than;
  // Advanced with an error code: a directory that fails to read on the
  // way (EIO, a stale NFS handle) is a failure to report, not a throw.
  for (; entries != fs::directory_iterator(); entries.increment(error)) {
    const auto& entry = *entries;
    std::error_code e;
    // Only what the worker makes there: regular files. A link is never
    // followed, so nothing outside the directory can be removed.
    if (fs::symlink_status(entry.path(), e).type() != fs::file_type::regular)
      continue;
    auto written = fs::last_write_time(entry.path(), e);
    // A file that went meanwhile (its worker renamed or removed it) is
    // not a failure.
    if (e == std::errc::no_such_file_or_directory)
      continue;
    if (e) {
      note_failure(entry.path(), e);
      continue;
    }
    if (written > cutoff)
      continue;
    if (fs::remove(entry.path(), e))
      ++result.removed;
    else if (e && e != std::errc::no_such_file_or_directory)
      note_failure(entry.path(), e);
  }
  // A failed step leaves the iterator at the end with the error set.
  if (error)
    note_failure(dir, error);
  return result;
}

std::string file_uri(const std::string& path) {
  // RFC 3986: unreserved characters and '/' stay, every other byte is
  // %XX, so a '#', '?', '%' or space in output.dir cannot change what a
  // URI parser reads.
  static const char* hex = "0123456789ABCDEF";
  std::string uri = "file://";
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      uri += static_cast<char>(c);
    } else {
      uri += '%';
      uri += hex[c >> 4];
      uri += hex[c & 15];
    }
  }
  return uri;
}

bool discard_image(const artifact& image) {
  if (image.path.empty() || image.uri.rfind("file://", 0) != 0)
    return true;
  if (::unlink(image.path.c_str()) == 0 || errno == ENOENT)
    return true;
  return false;
}

}  // namespace imagen
