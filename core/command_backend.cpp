#include "core/command_backend.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "core/image_store.hpp"
#include "core/png.hpp"
#include "core/subprocess.hpp"
#include "core/validation.hpp"

extern char** environ;

namespace imagen {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

/// Output kept from the command for its error message.
constexpr std::size_t tail_limit = 4096;

/// A generator's PNG larger than this is refused rather than read.
constexpr std::uintmax_t max_output_bytes = 512u << 20;

/// "2s", "5m", "250ms": how operators write durations in the config.
std::string show_duration(milliseconds d) {
  auto ms = d.count();
  if (ms > 0 && ms % 60000 == 0)
    return std::to_string(ms / 60000) + "m";
  if (ms > 0 && ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

/// The output tail goes into a text column and a JSON document: keep it
/// valid UTF-8 without control characters other than newline and tab.
/// Anything PostgreSQL would refuse (a cut, overlong or surrogate
/// sequence) becomes '?', or the whole outcome could never be written.
std::string printable_tail(const std::string& raw) {
  std::string text;
  text.reserve(raw.size());
  std::size_t i = 0;
  // A cut at the start of the tail may land inside a character.
  while (i < raw.size() && (static_cast<unsigned char>(raw[i]) & 0xc0) == 0x80)
    ++i;
  while (i < raw.size()) {
    const std::size_t start = i;
    auto cp = next_code_point(raw, i);
    if (!cp) {
      text += '?';
      ++i;
      continue;
    }
    if (*cp < 0x80) {
      bool keep = (*cp >= 0x20 && *cp != 0x7f) || *cp == '\n' || *cp == '\t';
      text += keep ? static_cast<char>(*cp) : '?';
      continue;
    }
    text.append(raw, start, i - start);
  }
  auto end = text.find_last_not_of(" \t\n");
  text.erase(end == std::string::npos ? 0 : end + 1);
  auto begin = text.find_first_not_of(" \t\n");
  return begin == std::string::npos ? std::string{} : text.substr(begin);
}

std::string with_tail(std::string message, const std::string& raw_tail) {
  std::string tail = printable_tail(raw_tail);
  if (!tail.empty())
    message += ": " + tail;
  return message;
}

std::string unique_output_path(const std::string& dir) {
  return dir + "/out-" + scratch_tag() + ".png";
}

/// Removes the command's output file whatever happens.
struct scratch_file {
  std::string path;
  ~scratch_file() {
    std::error_code ignored;
    fs::remove(path, ignored);
  }
};

std::vector<std::string> environment(const command_spec& spec,
                                     const slot_context& where) {
  std::map<std::string, std::string> merged;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string text = *entry;
    auto eq = text.find('=');
    if (eq == std::string::npos)
      continue;
    auto name = text.substr(0, eq);
    // The worker's own settings (IMAGEN_DATABASE_URL with its password)
    // and libpq's (PGPASSWORD, PGHOST, ...) are not the generator's
    // business: a third-party script that logs its environment would
    // leak the database password. The backend's env table can still set
    // any of them on purpose.
    if (name.rfind("IMAGEN_", 0) == 0 || name.rfind("PG", 0) == 0)
      continue;
    merged[name] = text.substr(eq + 1);
  }
  // A CPU slot is bound to no device. Without this a worker started with
  // GPUs visible would let every CPU slot's command pick GPU 0 on its
  // own; an operator who wants that says so in the backend's env table.
  merged["CUDA_VISIBLE_DEVICES"] = "";
  for (const auto& [key, value] : spec.env)
    merged[key] = value;
  if (where.gpu)
    merged["CUDA_VISIBLE_DEVICES"] = std::to_string(*where.gpu);
  std::vector<std::string> result;
  result.reserve(merged.size());
  for (const auto& [key, value] : merged)
    result.push_back(key + "=" + value);
  return result;
}

std::vector<std::uint8_t> read_output(const std::string& path,
                                      const std::string& name) {
  std::error_code error;
  auto size = fs::file_size(path, error);
  if (error)
    throw backend_error(failure_kind::backend,
                        "command backend " + name +
                            " output is not a PNG (no file at " + path + ")");
  if (size > max_output_bytes)
    throw backend_error(failure_kind::backend,
                        "command backend " + name + " output of " +
                            std::to_string(size) + " bytes is too large");
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()),
          static_cast<std::streamsize>(bytes.size()));
  if (!in)
    throw backend_error(
        failure_kind::backend,
        "command backend " + name + " cannot read output " + path);
  return bytes;
}

}  // namespace

command_backend::command_backend(command_spec spec) : spec_(std::move(spec)) {
  if (spec_.argv.empty())
    throw std::invalid_argument("command backend " + spec_.name +
                                " has an empty argv");
  if (spec_.scratch_dir.empty())
    spec_.scratch_dir = fs::temp_directory_path().string();
}

std::optional<milliseconds> command_backend::timeout() const {
  if (spec_.timeout.count() > 0)
    return spec_.timeout;
  return std::nullopt;
}

std::vector<std::string> command_backend::expand(
    const job& j, const slot_context& where, const std::string& output) const {
  auto size = resolve_size(j);
  const std::map<std::string, std::string> values = {
      {"prompt", j.prompt},
      // Jobs carry no negative prompt yet; the placeholder becomes empty.
      {"negative_prompt", ""},
      {"width", std::to_string(size.width)},
      {"height", std::to_string(size.height)},
      {"steps", std::to_string(size.steps)},
      {"seed", std::to_string(j.seed)},
      {"model", j.model},
      {"output", output},
      {"device", where.gpu ? std::to_string(*where.gpu) : "cpu"},
  };

  // One pass from left to right: a substituted value is never scanned
  // again, so a prompt containing "{output}" stays literal.
  std::vector<std::string> argv;
  argv.reserve(spec_.argv.size());
  for (const auto& element : spec_.argv) {
    std::string out;
    std::size_t i = 0;
    while (i < element.size()) {
      auto open = element.find('{', i);
      if (open == std::string::npos) {
        out.append(element, i, std::string::npos);
        break;
      }
      out.append(element, i, open - i);
      auto close = element.find('}', open + 1);
      auto found =
          close == std::string::npos
              ? values.end()
              : values.find(element.substr(open + 1, close - open - 1));
      if (found == values.end()) {
        out += '{';
        i = open + 1;
        continue;
      }
      out += found->second;
      i = close + 1;
    }
    argv.push_back(std::move(out));
  }
  return argv;
}

generation command_backend::generate(
    const job& j, const slot_context& where,
    std::chrono::steady_clock::time_point deadline) {
  auto start = std::chrono::steady_clock::now();
  // Rounded up: the pipeline set the deadline a moment ago from the
  // configured job_timeout, and "timed out after 5m" is what the operator
  // configured, not "4m59.999s" truncated to 299999ms.
  milliseconds limit = std::chrono::ceil<milliseconds>(deadline - start);
  if (auto own = timeout(); own && *own < limit) {
    limit = *own;
    deadline = start + *own;
  }

  std::error_code error;
  fs::create_directories(spec_.scratch_dir, error);
  if (error)
    throw backend_error(failure_kind::backend,
                        "command backend " + spec_.name +
                            " cannot create scratch directory " +
                            spec_.scratch_dir + ": " + error.message());
  scratch_file output{unique_output_path(spec_.scratch_dir)};

  process_request request;
  request.argv = expand(j, where, output.path);
  request.env = environment(spec_, where);
  request.deadline = deadline;
  request.cancel = where.cancel;
  request.tail_limit = tail_limit;

  process_result result;
  try {
    result = run_process(request);
  } catch (const spawn_error& e) {
    throw backend_error(failure_kind::backend,
                        "command backend " + spec_.name + ": " + e.what());
  }

  using ending = process_result::ending;
  const std::string who = "command backend " + spec_.name;
  switch (result.end) {
    case ending::timed_out:
      throw backend_error(
          failure_kind::timeout,
          with_tail(who + " timed out after " + show_duration(limit),
                    result.output_tail));
    case ending::cancelled:
      throw backend_error(failure_kind::cancelled,
                          who + " was cancelled by shutdown");
    case ending::signaled:
      throw backend_error(
          failure_kind::backend,
          with_tail(who + " was killed by signal " + signal_name(result.signal),
                    result.output_tail));
    case ending::exited:
      break;
  }
  if (result.status != 0)
    throw backend_error(
        failure_kind::backend,
        with_tail(who + " exited with status " + std::to_string(result.status),
                  result.output_tail));

  auto bytes = read_output(output.path, spec_.name);
  auto info = inspect_png(bytes);
  if (!info)
    throw backend_error(failure_kind::backend,
                        who + " output is not a PNG (" +
                            std::to_string(bytes.size()) + " bytes at " +
                            output.path + ")");
  generation image{std::move(bytes), info->width, info->height, {}};
  image.size_verified = true;
  return image;
}

}  // namespace imagen
