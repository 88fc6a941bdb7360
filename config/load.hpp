// Builds the configuration from its layers: defaults, then the TOML file,
// then IMAGEN_* environment variables, then command-line flags. Each layer
// is validated as it is read, so an error names the key, variable or flag
// that was wrong and the value it had.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "config/config.hpp"

namespace imagen {

/// The flags of `imagen-worker run` that override a configuration key;
/// empty when not given on the command line.
struct flag_overrides {
  std::optional<std::string> database_url;
  std::optional<int> pool_size;
  std::optional<std::string> gpus;  // "0,1"; "" asks for CPU slots
  std::optional<std::string> log_format;
  bool exit_when_idle = false;
};

struct load_inputs {
  /// The TOML file; when empty, IMAGEN_CONFIG names it, else none is read.
  std::optional<std::string> config_file;
  /// The process environment as a map, so tests can pass their own. Its
  /// PATH is where a command backend's program is looked for.
  std::map<std::string, std::string> environment;
  flag_overrides flags;
  /// Whether a command backend's program must exist here. `run` starts
  /// generators and checks; migrate, enqueue and status do not, so that
  /// they work from a host without the generators (a deploy job, an
  /// operator's laptop). Everything else is checked either way.
  bool check_programs = true;
};

/// Throws config_error, naming the key and the value, on anything wrong:
/// an unknown key or variable, a wrong type, a value out of range, a
/// default_backend that names no backend, a command backend whose
/// program cannot be started (with check_programs) or whose argv has an
/// unknown placeholder.
config load_config(const load_inputs& inputs);

/// The environment of this process, for load_inputs::environment.
std::map<std::string, std::string> process_environment();

/// The IMAGEN_* variable that sets `key` ("worker.lease" gives
/// IMAGEN_WORKER_LEASE).
std::string environment_name(const std::string& key);

}  // namespace imagen
