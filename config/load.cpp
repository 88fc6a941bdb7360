// Reads the configuration layers. Every scalar key is described once, in
// scalar_keys(): the file, the environment and the flags all go through
// the same setter, so a key is parsed and range-checked the same way
// wherever it comes from.
#include "config/load.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include <toml++/toml.h>

#include "config/command_argv.hpp"
#include "config/quote.hpp"
#include "core/pg_settings.hpp"
#include "core/validation.hpp"

extern char** environ;

namespace imagen {
namespace {

/// The sections whose keys are scalars listed in scalar_keys().
const std::set<std::string> scalar_sections = {"worker", "pool", "output",
                                               "limits", "log"};

const std::vector<std::string> backend_kinds = {"procedural", "command",
                                                "null"};

/// Variables under the IMAGEN_ prefix that are not configuration keys.
constexpr std::string_view env_prefix = "IMAGEN_";
constexpr std::string_view test_env_prefix = "IMAGEN_TEST_";
constexpr const char* env_database_url = "IMAGEN_DATABASE_URL";
constexpr const char* env_config_file = "IMAGEN_CONFIG";

/// One value on its way into the configuration: from the file (`node`
/// set) or as text from the environment or a flag.
struct raw_value {
  std::string name;    // "worker.lease", "IMAGEN_WORKER_LEASE", "--gpus"
  std::string origin;  // "FILE:LINE: " for a file value, else empty
  const toml::node* node = nullptr;
  std::string text;
};

std::string join(const std::vector<std::string>& items,
                 const std::string& separator) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string origin_of(const std::string& file, const toml::node& node) {
  return file + ":" + std::to_string(node.source().begin.line) + ": ";
}

/// The value as the operator wrote it, for error messages.
std::string shown(const raw_value& v) {
  if (v.node == nullptr)
    return quote_value(v.text);
  if (v.node->is_string())
    return quote_value(v.node->as_string()->get());
  std::ostringstream out;
  v.node->visit([&out](const auto& n) { out << n; });
  return out.str();
}

[[noreturn]] void fail(const raw_value& v, const std::string& problem) {
  throw config_error(v.origin + v.name + ": " + problem);
}

milliseconds read_duration(const raw_value& v) {
  if (v.node != nullptr && !v.node->is_string())
    fail(v, shown(v) + " is not a duration (use 250ms, 5s, 5m, 1h)");
  const std::string text = v.node ? v.node->as_string()->get() : v.text;
  try {
    return parse_duration(v.name, text);
  } catch (const config_error& e) {
    throw config_error(v.origin + e.what());
  }
}

int read_int(const raw_value& v) {
  std::int64_t number = 0;
  if (v.node != nullptr) {
    if (!v.node->is_integer())
      fail(v, shown(v) + " is not an integer");
    number = v.node->as_integer()->get();
  } else {
    const char* last = v.text.data() + v.text.size();
    auto [end, ec] = std::from_chars(v.text.data(), last, number);
    if (ec != std::errc{} || end != last || v.text.empty())
      fail(v, shown(v) + " is not an integer");
  }
  if (number < std::numeric_limits<int>::min() ||
      number > std::numeric_limits<int>::max())
    fail(v, std::to_string(number) + " is out of range");
  return static_cast<int>(number);
}

std::string read_string(const raw_value& v) {
  if (v.node == nullptr)
    return v.text;
  if (!v.node->is_string())
    fail(v, shown(v) + " is not a string");
  return v.node->as_string()->get();
}

/// GPU indexes: a TOML array of integers, or "0,1" in the environment
/// and on the command line, where "" means no GPU.
std::vector<int> read_gpus(const raw_value& v) {
  std::vector<int> gpus;
  if (v.node != nullptr) {
    const auto* array = v.node->as_array();
    if (array == nullptr)
      fail(v, shown(v) + " is not a list of GPU indexes (use [0, 1])");
    for (const auto& item : *array) {
      if (!item.is_integer())
        fail(v, shown(v) + " is not a list of GPU indexes (use [0, 1])");
      gpus.push_back(read_int(raw_value{v.name, v.origin, &item, ""}));
    }
  } else {
    std::stringstream items(v.text);
    std::string item;
    while (!v.text.empty() && std::getline(items, item, ',')) {
      const bool digits =
          !item.empty() && std::all_of(item.begin(), item.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
          });
      if (!digits)
        fail(v, shown(v) + " is not a list of GPU indexes (use 0,1)");
      gpus.push_back(read_int(raw_value{v.name, v.origin, nullptr, item}));
    }
    if (!v.text.empty() && v.text.back() == ',')
      fail(v, shown(v) + " is not a list of GPU indexes (use 0,1)");
  }
  std::set<int> seen;
  for (int gpu : gpus) {
    if (gpu < 0)
      fail(v, std::to_string(gpu) + " is not a GPU index");
    if (!seen.insert(gpu).second)
      fail(v, "GPU " + std::to_string(gpu) + " is listed twice");
  }
  return gpus;
}

using setter = std::function<void(config&, const raw_value&)>;

enum class zero { allowed, refused };

setter duration_key(milliseconds config::*member, zero rule) {
  return [member, rule](config& c, const raw_value& v) {
    auto d = read_duration(v);
    if (rule == zero::refused && d.count() == 0)
      fail(v, format_duration(d) + " must be greater than 0");
    c.*member = d;
  };
}

setter int_key(int config::*member, int minimum) {
  return [member, minimum](config& c, const raw_value& v) {
    int n = read_int(v);
    if (n < minimum)
      fail(v,
           std::to_string(n) + " must be at least " + std::to_string(minimum));
    c.*member = n;
  };
}

/// A slot count: each slot is a thread, so it is bounded by max_slots.
setter slot_key(int config::*member) {
  return [member](config& c, const raw_value& v) {
    int n = read_int(v);
    if (n < 1)
      fail(v, std::to_string(n) + " must be at least 1");
    if (n > max_slots)
      fail(v, std::to_string(n) + " is more slots than " +
                  std::to_string(max_slots) +
                  " (each slot is a thread): run more worker processes");
    c.*member = n;
  };
}

setter limit_key(int job_limits::*member, int minimum) {
  return [member, minimum](config& c, const raw_value& v) {
    int n = read_int(v);
    if (n < minimum)
      fail(v,
           std::to_string(n) + " must be at least " + std::to_string(minimum));
    c.limits.*member = n;
  };
}

setter text_key(std::string config::*member) {
  return [member](config& c, const raw_value& v) {
    auto text = read_string(v);
    if (text.empty())
      fail(v, "\"\" must not be empty");
    // Both end up in text columns, which PostgreSQL refuses to hold
    // invalid UTF-8: every image registration would fail.
    if (!utf8_length(text))
      fail(v, quote_value(text) + " is not valid UTF-8");
    if (text.find('\0') != std::string::npos)
      fail(v, quote_value(text) + " contains a NUL character");
    c.*member = text;
  };
}

setter choice_key(std::string config::*member,
                  std::vector<std::string> allowed) {
  return [member, allowed](config& c, const raw_value& v) {
    auto text = read_string(v);
    if (std::find(allowed.begin(), allowed.end(), text) == allowed.end())
      fail(v, quote_value(text) + " is not one of " + join(allowed, ", "));
    c.*member = text;
  };
}

struct scalar_key {
  std::string key;
  setter set;
};

/// Every scalar key of the file; each also has an IMAGEN_* variable.
const std::vector<scalar_key>& scalar_keys() {
  static const std::vector<scalar_key> keys = {
      {"worker.poll_interval",
       duration_key(&config::poll_interval, zero::refused)},
      {"worker.job_timeout", duration_key(&config::job_timeout, zero::refused)},
      {"worker.lease", duration_key(&config::lease, zero::refused)},
      {"worker.shutdown_grace",
       duration_key(&config::shutdown_grace, zero::allowed)},
      {"worker.max_attempts", int_key(&config::max_attempts, 1)},
      // A retry_base of 0s retries a failed job at once, without backoff.
      {"worker.retry_base", duration_key(&config::retry_base, zero::allowed)},
      {"worker.retry_cap", duration_key(&config::retry_cap, zero::allowed)},
      {"worker.restart_intensity", int_key(&config::restart_intensity, 0)},
      {"worker.restart_period",
       duration_key(&config::restart_period, zero::refused)},
      {"worker.db_timeout", duration_key(&config::db_timeout, zero::refused)},
      {"pool.gpus",
       [](config& c, const raw_value& v) { c.gpus = read_gpus(v); }},
      {"pool.slots_per_gpu", slot_key(&config::slots_per_gpu)},
      {"pool.size", slot_key(&config::pool_size)},
      {"output.dir", text_key(&config::output_dir)},
      {"default_backend", text_key(&config::default_backend)},
      {"limits.max_prompt_chars", limit_key(&job_limits::max_prompt_chars, 1)},
      // Sides are multiples of 8, so the smallest useful limit is 8.
      {"limits.max_side", limit_key(&job_limits::max_side, 8)},
      {"limits.max_steps", limit_key(&job_limits::max_steps, 1)},
      {"log.format", choice_key(&config::log_format, {"text", "json"})},
      {"log.level",
       choice_key(&config::log_level, {"debug", "info", "warn", "error"})},
  };
  return keys;
}

const scalar_key* find_key(const std::string& key) {
  for (const auto& entry : scalar_keys())
    if (entry.key == key)
      return &entry;
  return nullptr;
}

void apply(config& c, const std::string& key, raw_value v) {
  find_key(key)->set(c, v);
}

// ---- the file ---------------------------------------------------------

std::string read_file(const std::string& path) {
  // An ifstream opens a directory and then reads nothing, which would
  // silently give the built-in defaults.
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw config_error("config file " + quote_value(path) +
                       " is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw config_error("config file " + quote_value(path) +
                       " cannot be read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw config_error("config file " + quote_value(path) +
                       " cannot be read: " + std::strerror(errno));
  return text.str();
}

[[noreturn]] void unknown_key(const std::string& file, const toml::node& node,
                              const std::string& key) {
  throw config_error(origin_of(file, node) + "unknown key " + key);
}

std::vector<std::string> read_argv(const raw_value& v) {
  const auto* array = v.node->as_array();
  std::vector<std::string> argv;
  if (array != nullptr) {
    for (const auto& item : *array) {
      if (!item.is_string())
        break;
      argv.push_back(item.as_string()->get());
    }
  }
  if (array == nullptr || argv.size() != array->size())
    fail(v, shown(v) + " is not a list of strings");
  return argv;
}

std::map<std::string, std::string> read_env_table(const raw_value& v) {
  const auto* table = v.node->as_table();
  if (table == nullptr)
    fail(v, shown(v) + " is not a table of strings");
  std::map<std::string, std::string> env;
  for (const auto& [name, value] : *table) {
    if (!value.is_string())
      fail(v, shown(v) + " is not a table of strings");
    env[std::string(name.str())] = value.as_string()->get();
  }
  return env;
}

/// The file being read, and where a command backend's program is looked
/// for: the worker's own PATH, which execvpe searches (a PATH in the
/// backend's env table only reaches the generator); nothing when unset.
/// Programs are looked for only when check_programs is set.
struct file_source {
  std::string path;
  std::optional<std::string> search_path;
  bool check_programs = true;
};

std::string argv_element(const std::string& key, std::size_t index) {
  return key + ".argv[" + std::to_string(index) + "]";
}

/// A command backend's argv: a program that can be started now, only
/// known placeholders, and {output} somewhere. The program must not
/// contain a placeholder: the configuration, not a job's fields, decides
/// what the worker runs.
void check_argv(const backend_config& b, const std::string& where,
                const std::string& key, const file_source& file) {
  if (b.argv.empty())
    throw config_error(where + key +
                       ".argv: [] is empty: a command backend needs the "
                       "generator's program and arguments");
  const std::string program = where + argv_element(key, 0) + ": ";
  if (b.argv[0].empty())
    throw config_error(program + "\"\" is empty: it names the program to run");

  bool has_output = false;
  for (std::size_t i = 0; i < b.argv.size(); ++i) {
    const auto scan = scan_placeholders(b.argv[i]);
    if (scan.unknown) {
      std::vector<std::string> names;
      for (const auto& name : command_placeholders())
        names.push_back("{" + name + "}");
      throw config_error(where + argv_element(key, i) + ": " +
                         quote_value(b.argv[i]) + " has an unknown " +
                         "placeholder " + *scan.unknown +
                         " (known: " + join(names, " ") + ")");
    }
    if (i == 0 && !scan.known.empty())
      throw config_error(program + quote_value(b.argv[0]) +
                         " contains the placeholder {" + scan.known[0] +
                         "}: the program must be fixed in the "
                         "configuration, not chosen by a job");
    has_output = has_output || std::count(scan.known.begin(), scan.known.end(),
                                          "output") != 0;
  }
  if (!has_output)
    throw config_error(where + key +
                       ".argv has no {output}: the worker reads the "
                       "image from that path");

  if (!file.check_programs)
    return;
  if (auto problem = program_problem(b.argv[0], file.search_path))
    throw config_error(program + *problem);
}

/// Checks what a backend of its kind needs and refuses options that its
/// kind would silently ignore.
void check_backend(const backend_config& b, const toml::table& table,
                   const std::string& where, const file_source& file) {
  const std::string key = "backends." + b.name;
  auto refuse = [&](const char* option) {
    if (const auto* node = table.get(option))
      throw config_error(origin_of(file.path, *node) + key + "." + option +
                         " is not an option of a " + b.kind + " backend");
  };

  if (b.kind != "command") {
    // Only the command backend has a time limit of its own; the others
    // run under worker.job_timeout.
    refuse("argv");
    refuse("env");
    refuse("timeout");
  }
  if (b.kind != "null")
    refuse("delay");

  if (b.kind == "command") {
    if (!table.contains("argv"))
      throw config_error(where + key +
                         ".argv is missing: a command backend needs the "
                         "generator's argv");
    check_argv(b, origin_of(file.path, *table.get("argv")), key, file);
  }
}

backend_config read_backend(const file_source& file, const std::string& name,
                            const toml::node& node) {
  const std::string key = "backends." + name;
  raw_value whole{key, origin_of(file.path, node), &node, ""};
  const auto* table = node.as_table();
  if (table == nullptr)
    fail(whole, shown(whole) + " is not a table");
  if (name.empty())
    fail(whole, "a backend needs a name");

  backend_config b;
  b.name = name;
  for (const auto& [option_key, value] : *table) {
    const std::string option(option_key.str());
    raw_value v{key + "." + option, origin_of(file.path, value), &value, ""};
    if (option == "kind")
      b.kind = read_string(v);
    else if (option == "argv")
      b.argv = read_argv(v);
    else if (option == "timeout")
      b.timeout = read_duration(v);
    else if (option == "env")
      b.env = read_env_table(v);
    else if (option == "delay")
      b.delay = read_duration(v);
    else
      unknown_key(file.path, value, v.name);
    if (option == "timeout" && b.timeout->count() == 0)
      fail(v, "0s must be greater than 0");
  }

  const auto where = origin_of(file.path, node);
  if (!table->contains("kind"))
    throw config_error(where + key + ".kind is missing (one of " +
                       join(backend_kinds, ", ") + ")");
  if (std::find(backend_kinds.begin(), backend_kinds.end(), b.kind) ==
      backend_kinds.end())
    fail(raw_value{key + ".kind", origin_of(file.path, *table->get("kind")),
                   table->get("kind"), ""},
         quote_value(b.kind) + " is not one of " + join(backend_kinds, ", "));
  check_backend(b, *table, where, file);
  return b;
}

void read_table(config& c, const file_source& file, const toml::table& table,
                const std::string& prefix) {
  for (const auto& [name, node] : table) {
    const std::string own(name.str());
    const std::string key = prefix.empty() ? own : prefix + "." + own;
    raw_value v{key, origin_of(file.path, node), &node, ""};

    if (const auto* scalar = find_key(key)) {
      scalar->set(c, v);
    } else if (prefix.empty() && key == "backends") {
      if (!node.is_table())
        fail(v, shown(v) + " is not a table");
      for (const auto& [backend, options] : *node.as_table()) {
        auto b = read_backend(file, std::string(backend.str()), options);
        c.backends[b.name] = b;
      }
    } else if (prefix.empty() && scalar_sections.count(key) != 0) {
      if (!node.is_table())
        fail(v, shown(v) + " is not a table");
      read_table(c, file, *node.as_table(), key);
    } else if (prefix.empty() && (key == "database_url" || key == "database")) {
      // Keeping the URL out of the file keeps passwords out of a file that
      // is usually checked in; libpq's ~/.pgpass is the place for them.
      throw config_error(v.origin + key +
                         ": the database URL is not read from the file; "
                         "use --database-url, IMAGEN_DATABASE_URL or the "
                         "PG* variables");
    } else {
      unknown_key(file.path, node, key);
    }
  }
}

void read_config_file(config& c, const file_source& file) {
  const std::string text = read_file(file.path);
  toml::table root;
  try {
    root = toml::parse(text, file.path);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw config_error(file.path + ":" + std::to_string(at.line) + ":" +
                       std::to_string(at.column) + ": " +
                       std::string(e.description()));
  }
  read_table(c, file, root, "");
}

// ---- the environment and the flags ------------------------------------

void read_environment(config& c,
                      const std::map<std::string, std::string>& env) {
  for (const auto& [name, value] : env) {
    if (name.compare(0, env_prefix.size(), env_prefix) != 0 ||
        name.compare(0, test_env_prefix.size(), test_env_prefix) == 0)
      continue;
    if (name == env_database_url) {
      c.database_url = value;
      continue;
    }
    if (name == env_config_file)
      continue;  // read before the file, in load_config

    const scalar_key* match = nullptr;
    for (const auto& entry : scalar_keys())
      if (environment_name(entry.key) == name)
        match = &entry;
    if (match == nullptr)
      throw config_error(name +
                         " is not a configuration variable (the README "
                         "lists them under Configuration)");
    match->set(c, raw_value{name, "", nullptr, value});
  }
}

void read_flags(config& c, const flag_overrides& flags) {
  if (flags.database_url)
    c.database_url = *flags.database_url;
  if (flags.gpus)
    apply(c, "pool.gpus", raw_value{"--gpus", "", nullptr, *flags.gpus});
  if (flags.pool_size)
    apply(c, "pool.size",
          raw_value{"--pool-size", "", nullptr,
                    std::to_string(*flags.pool_size)});
  if (flags.log_format)
    apply(c, "log.format",
          raw_value{"--log-format", "", nullptr, *flags.log_format});
  c.exit_when_idle = flags.exit_when_idle;
}

// ---- checks across keys -----------------------------------------------

void check_whole(const config& c, const flag_overrides& flags) {
  if (flags.pool_size && !c.gpus.empty()) {
    std::vector<std::string> gpus;
    for (int gpu : c.gpus)
      gpus.push_back(std::to_string(gpu));
    throw config_error("--pool-size " + std::to_string(*flags.pool_size) +
                       " conflicts with pool.gpus " + join(gpus, ",") +
                       ": with GPUs the slot count is gpus x "
                       "slots_per_gpu (pass --gpus \"\" for CPU slots)");
  }

  // Counted in 64 bits: the product of two valid ints may not fit in one.
  const std::int64_t gpu_slots =
      static_cast<std::int64_t>(c.gpus.size()) * c.slots_per_gpu;
  if (!c.gpus.empty() && gpu_slots > max_slots) {
    std::vector<std::string> gpus;
    for (int gpu : c.gpus)
      gpus.push_back(std::to_string(gpu));
    throw config_error(
        "pool.slots_per_gpu: " + std::to_string(c.slots_per_gpu) + " x " +
        std::to_string(c.gpus.size()) + " GPUs (pool.gpus " + join(gpus, ",") +
        ") is " + std::to_string(gpu_slots) + " slots, more slots than " +
        std::to_string(max_slots) +
        " (each slot is a thread): run more worker processes");
  }

  // A relative output.dir becomes an absolute path under the working
  // directory, and that path is what the database stores.
  std::error_code error;
  const auto output = std::filesystem::absolute(c.output_dir, error).string();
  if (!error && !utf8_length(output))
    throw config_error("output.dir: " + quote_value(c.output_dir) +
                       " resolves to " + quote_value(output) +
                       ", which is not valid UTF-8");

  if (c.retry_cap < c.retry_base)
    throw config_error("worker.retry_cap: " + format_duration(c.retry_cap) +
                       " is shorter than worker.retry_base " +
                       format_duration(c.retry_base));

  // A heartbeat is sent every lease/3 and may itself take db_timeout; it
  // must still land before the lease runs out, or a healthy worker loses
  // its jobs to a rescue.
  if (c.lease / 3 + c.db_timeout >= c.lease)
    throw config_error(
        "worker.lease: " + format_duration(c.lease) +
        " is too short for worker.db_timeout " + format_duration(c.db_timeout) +
        " (a heartbeat every lease/3 may take db_timeout; the lease must "
        "be longer than 1.5 x db_timeout)");

  // A URL libpq cannot even read would fail every connection: it is the
  // configuration that is wrong, not the database that is down.
  if (auto problem = conninfo_problem(c.database_url)) {
    const char* setting =
        flags.database_url ? "--database-url" : env_database_url;
    throw config_error(std::string(setting) + ": " +
                       quote_value(redact_url(c.database_url)) +
                       " is not a valid database URL: " + *problem);
  }

  if (c.backends.count(c.default_backend) == 0) {
    std::vector<std::string> names;
    for (const auto& entry : c.backends)
      names.push_back(entry.first);
    throw config_error("default_backend: " + quote_value(c.default_backend) +
                       " names no backend (configured: " + join(names, ", ") +
                       ")");
  }
}

}  // namespace

std::string environment_name(const std::string& key) {
  std::string name(env_prefix);
  for (char ch : key)
    name +=
        ch == '.'
            ? '_'
            : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return name;
}

config load_config(const load_inputs& inputs) {
  config c;
  c.pool_size = std::max(1u, std::thread::hardware_concurrency());

  std::optional<std::string> file = inputs.config_file;
  if (!file) {
    auto named = inputs.environment.find(env_config_file);
    if (named != inputs.environment.end() && !named->second.empty())
      file = named->second;
  }
  if (file) {
    file_source source{*file, std::nullopt, inputs.check_programs};
    auto path = inputs.environment.find("PATH");
    if (path != inputs.environment.end())
      source.search_path = path->second;
    read_config_file(c, source);
  }

  read_environment(c, inputs.environment);
  read_flags(c, inputs.flags);

  // The built-in generator exists unless the file gave that name to
  // another backend.
  if (c.backends.count("procedural") == 0) {
    auto& builtin = c.backends["procedural"];
    builtin.name = "procedural";
    builtin.kind = "procedural";
  }

  check_whole(c, inputs.flags);
  return c;
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    auto equals = text.find('=');
    if (equals == std::string_view::npos)
      continue;
    env.emplace(std::string(text.substr(0, equals)),
                std::string(text.substr(equals + 1)));
  }
  return env;
}

}  // namespace imagen
