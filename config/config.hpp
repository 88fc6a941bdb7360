// The worker's configuration: defaults, then a TOML file, then IMAGEN_*
// environment variables, then command-line flags. Every value is validated
// once here; the rest of the program trusts it.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace imagen {

using std::chrono::milliseconds;

namespace defaults {
/// Safety net for a lost notification; LISTEN does the fast path.
constexpr milliseconds poll_interval{5000};
/// A hung backend must not hold a slot forever.
constexpr milliseconds job_timeout{5 * 60 * 1000};
/// How long a silent worker keeps its jobs before others rescue them.
constexpr milliseconds lease{60 * 1000};
/// Time for jobs in flight to finish on SIGTERM.
constexpr milliseconds shutdown_grace{60 * 1000};
/// Used when a row does not set its own max_attempts.
constexpr int max_attempts = 3;
/// First retry delay; doubles per attempt, with jitter, up to the cap.
constexpr milliseconds retry_base{5000};
constexpr milliseconds retry_cap{10 * 60 * 1000};
/// Supervisor gives up after this many restarts of one child per period.
constexpr int restart_intensity = 5;
constexpr milliseconds restart_period{60 * 1000};
/// Every database call gets at most this long before it counts as failed.
constexpr milliseconds db_timeout{10 * 1000};
constexpr int slots_per_gpu = 1;
constexpr const char* output_dir = "var/images";
constexpr const char* default_backend = "procedural";
}  // namespace defaults

/// Each slot is a thread and a database claim; more than this on one
/// process is a mistake, and beyond it the slot arithmetic could overflow.
constexpr int max_slots = 1024;

/// Longest duration of any key. Longer ones overflowed timers (an idle
/// worker spun at 100% CPU) and retry times PostgreSQL cannot store.
constexpr milliseconds max_duration{30LL * 24 * 60 * 60 * 1000};

/// A configuration value that is wrong; exits 2 with this message, which
/// names the key and the value.
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One `[backends.<name>]` table.
struct backend_config {
  std::string name;
  std::string kind;  // "procedural", "command" or "null"
  std::vector<std::string> argv;
  std::optional<milliseconds> timeout;  // overrides worker.job_timeout
  std::map<std::string, std::string> env;
  /// `null` only: how long each job pretends to take (benchmarks).
  milliseconds delay{0};
};

struct config {
  std::string database_url;  // empty: libpq defaults (PGHOST, ...)

  milliseconds poll_interval = defaults::poll_interval;
  milliseconds job_timeout = defaults::job_timeout;
  milliseconds lease = defaults::lease;
  milliseconds shutdown_grace = defaults::shutdown_grace;
  int max_attempts = defaults::max_attempts;
  milliseconds retry_base = defaults::retry_base;
  milliseconds retry_cap = defaults::retry_cap;
  int restart_intensity = defaults::restart_intensity;
  milliseconds restart_period = defaults::restart_period;
  milliseconds db_timeout = defaults::db_timeout;
  bool exit_when_idle = false;

  std::vector<int> gpus;  // empty: CPU slots
  int slots_per_gpu = defaults::slots_per_gpu;
  int pool_size = 0;  // 0 until resolved: number of CPUs

  std::string output_dir = defaults::output_dir;
  std::string default_backend = defaults::default_backend;
  std::map<std::string, backend_config> backends;
  job_limits limits;  // defaults in core/job.hpp, from DESIGN.md

  std::string log_format = "text";
  std::string log_level = "info";

  /// Number of pipeline slots this configuration asks for.
  int slot_count() const;

  /// Device of slot `index`: a GPU index, or empty for a CPU slot.
  std::optional<int> slot_gpu(int index) const;
};

/// Parses "250ms", "5s", "5m", "1h", at most max_duration; throws
/// config_error naming `key` and the text.
milliseconds parse_duration(const std::string& key, const std::string& text);

/// Writes a duration the way parse_duration reads it: "250ms", "5s", "5m".
std::string format_duration(milliseconds d);

}  // namespace imagen
