// The imagen-worker command line: `run` the worker, `migrate` the schema,
// `enqueue` jobs and print the queue's `status`. Exit status 0 is success,
// 2 bad usage or configuration, 1 a runtime failure.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <CLI/CLI.hpp>

#include "actors/runtime.hpp"
#include "config/config.hpp"
#include "config/load.hpp"
#include "config/quote.hpp"
#include "core/command_backend.hpp"
#include "core/generation_pipeline.hpp"
#include "core/image_store.hpp"
#include "core/log.hpp"
#include "core/migrations.hpp"
#include "core/null_backend.hpp"
#include "core/pg_admin.hpp"
#include "core/pg_connection.hpp"
#include "core/pg_listener.hpp"
#include "core/pg_queue.hpp"
#include "core/pg_settings.hpp"
#include "core/procedural_backend.hpp"
#include "core/queue.hpp"
#include "core/validation.hpp"
#include "core/worker_id.hpp"

namespace imagen {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_runtime = 1;
constexpr int exit_usage = 2;

/// Migrations may rewrite a large jobs table; the per-call db_timeout of
/// the hot path would abort them half way.
constexpr std::chrono::milliseconds migrate_deadline{10 * 60 * 1000};

/// `run` refuses to start on a database that was never migrated rather
/// than creating tables behind the operator's back.
constexpr prepared_statement schema_present{
    "imagen_schema_present", "SELECT to_regclass('imagen.jobs') IS NOT NULL"};

/// Flags shared by the commands, filled by CLI11.
struct common_flags {
  std::optional<std::string> config_file;
  std::optional<std::string> database_url;
};

void print_error(const std::string& message) {
  std::cerr << "imagen-worker: " << message << '\n';
}

/// Loads the configuration for a command; throws config_error. Only a
/// command that runs jobs needs the command backends' programs here.
config load(const common_flags& common, flag_overrides flags, bool runs_jobs) {
  load_inputs inputs;
  inputs.check_programs = runs_jobs;
  inputs.config_file = common.config_file;
  inputs.environment = process_environment();
  flags.database_url = common.database_url;
  inputs.flags = std::move(flags);
  auto c = load_config(inputs);
  log::set_format(c.log_format == "json" ? log::format::json
                                         : log::format::text);
  log::set_level(c.log_level);
  return c;
}

pg_settings settings_of(const config& c) {
  pg_settings settings;
  settings.url = c.database_url;
  settings.deadline = c.db_timeout;
  return settings;
}

std::string describe_url(const std::string& url) {
  return url.empty() ? "libpq defaults (PGHOST, PGDATABASE, ...)"
                     : redact_url(url);
}

// ---- run --------------------------------------------------------------

std::string join_names(const std::map<std::string, backend_config>& map) {
  std::string out;
  for (const auto& entry : map)
    out += (out.empty() ? "" : ",") + entry.first;
  return out;
}

std::string join_gpus(const std::vector<int>& gpus) {
  std::string out;
  for (int gpu : gpus)
    out += (out.empty() ? "" : ",") + std::to_string(gpu);
  return out.empty() ? "none" : out;
}

void log_config(const config& c) {
  log::info("config.loaded",
            {{"database", describe_url(c.database_url)},
             {"slots", c.slot_count()},
             {"gpus", join_gpus(c.gpus)},
             {"output_dir", c.output_dir},
             {"default_backend", c.default_backend},
             {"backends", join_names(c.backends)},
             {"poll_interval", format_duration(c.poll_interval)},
             {"job_timeout", format_duration(c.job_timeout)},
             {"lease", format_duration(c.lease)},
             {"max_attempts", c.max_attempts},
             {"exit_when_idle", c.exit_when_idle}});
}

/// One backend object per configured backend, shared by every slot.
std::map<std::string, std::shared_ptr<backend>> make_backends(
    const config& c, const std::string& scratch_dir) {
  std::map<std::string, std::shared_ptr<backend>> backends;
  for (const auto& [name, b] : c.backends) {
    if (b.kind == "command") {
      command_spec spec;
      spec.name = name;
      spec.argv = b.argv;
      spec.timeout = b.timeout.value_or(std::chrono::milliseconds{0});
      spec.env = b.env;
      spec.scratch_dir = scratch_dir;
      backends[name] = std::make_shared<command_backend>(spec);
    } else if (b.kind == "null") {
      backends[name] = std::make_shared<null_backend>(b.delay);
    } else {
      backends[name] = std::make_shared<procedural_backend>();
    }
  }
  return backends;
}

/// Creates the output and scratch directories; an error names output.dir
/// because it is the operator's configuration that has to change, and the
/// scratch directory, because a file where it goes is in the way of an
/// output.dir that is otherwise fine.
std::string prepare_output_dir(const config& c) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto scratch = fs::absolute(fs::path(c.output_dir) / scratch_subdir, ec);
  if (!ec)
    fs::create_directories(scratch, ec);
  if (ec)
    throw config_error("output.dir: \"" + c.output_dir +
                       "\" cannot be created with its scratch directory " +
                       scratch.string() + ": " + ec.message());
  return scratch.string();
}

/// A file in the scratch directory that nobody wrote to for this long is
/// swept even when every timeout is shorter. Workers that share output.dir
/// need not share their timeouts (a rolling change of job_timeout, hosts
/// with slower backends): a worker that swept after its own longest
/// timeout would take the files of a longer job on another host. And a
/// file that a crash left behind costs little for a day.
constexpr std::chrono::hours sweep_floor{24};

/// Removes what workers killed in the middle of a job left in the scratch
/// directory; run at start and, by the status writer, every
/// scratch_sweep_interval. A file there lives for a moment (an image
/// before its rename) or at most as long as its job may run (a command's
/// output), so one untouched for a day, or for the longest job timeout
/// and ten minutes more when that is longer, belongs to nobody, whichever
/// worker sharing output.dir made it. Never throws.
void sweep_leftovers(const config& c, const std::string& scratch_dir) {
  auto longest = c.job_timeout;
  for (const auto& [name, b] : c.backends)
    if (b.timeout)
      longest = std::max(longest, *b.timeout);
  auto older_than = std::max(std::chrono::ceil<std::chrono::seconds>(
                                 longest + std::chrono::minutes(10)),
                             std::chrono::seconds(sweep_floor));
  sweep_result swept;
  try {
    swept = sweep_scratch(scratch_dir, older_than);
  } catch (const std::exception& e) {
    swept.failed = 1;
    swept.first_error = e.what();
  }
  if (swept.removed > 0)
    log::info("storage.swept", {{"dir", scratch_dir},
                                {"files", swept.removed},
                                {"older_than", format_duration(older_than)}});
  if (swept.failed > 0)
    log::warn("storage.sweep_failed", {{"dir", scratch_dir},
                                       {"failures", swept.failed},
                                       {"error", swept.first_error}});
}

/// Exits the way DESIGN says when the schema is missing: 1, naming the
/// command that fixes it. Throws queue_error when the database cannot be
/// reached.
bool schema_exists(const pg_settings& settings) {
  pg_connection connection(settings);
  auto rows = connection.query(schema_present, {});
  return rows.size() == 1 && rows.text(0, 0) == "t";
}

int run_command(const common_flags& common, const flag_overrides& flags) {
  config c;
  std::string scratch_dir;
  try {
    c = load(common, flags, true);
    scratch_dir = prepare_output_dir(c);
  } catch (const config_error& e) {
    print_error(e.what());
    return exit_usage;
  }
  log_config(c);
  sweep_leftovers(c, scratch_dir);

  const auto settings = settings_of(c);
  try {
    if (!schema_exists(settings)) {
      log::error("worker.schema_missing",
                 {{"database", describe_url(c.database_url)}});
      print_error("schema imagen is missing: run `imagen-worker migrate`");
      return exit_runtime;
    }
  } catch (const queue_error& e) {
    log::error(
        "worker.database_unreachable",
        {{"database", describe_url(c.database_url)}, {"error", e.what()}});
    return exit_runtime;
  }

  // One identity per process: every queue connection of this worker must
  // claim and fence under the same name.
  const std::string worker_id = make_worker_id();
  const retry_policy retry{c.retry_base, c.retry_cap};
  auto backends = make_backends(c, scratch_dir);
  pipeline_settings pipeline_config;
  pipeline_config.limits = c.limits;
  pipeline_config.default_backend = c.default_backend;
  pipeline_config.output_dir = c.output_dir;
  pipeline_config.job_timeout = c.job_timeout;

  runtime_parts parts;
  parts.make_queue = [settings, worker_id, retry,
                      max_attempts = c.max_attempts] {
    return std::make_unique<pg_queue>(settings, worker_id, retry, max_attempts);
  };
  parts.make_notifications = [settings] {
    return std::make_unique<pg_notification_source>(settings);
  };
  parts.make_pipeline = [pipeline_config, backends](int) {
    return std::make_unique<generation_pipeline>(pipeline_config, backends);
  };
  parts.sweep_scratch = [c, scratch_dir] { sweep_leftovers(c, scratch_dir); };
  log::info("worker.starting", {{"worker", worker_id}});
  return run_worker(c, std::move(parts));
}

// ---- migrate, enqueue, status -----------------------------------------

/// The configuration of an administrative command; empty after printing
/// why it is wrong (the caller exits 2).
std::optional<config> load_or_report(const common_flags& common) {
  try {
    return load(common, {}, false);
  } catch (const config_error& e) {
    print_error(e.what());
    return std::nullopt;
  }
}

/// True when migrate has run; otherwise prints the hint (exit 1).
bool schema_ready(const config& c) {
  if (schema_exists(settings_of(c)))
    return true;
  print_error("schema imagen is missing: run `imagen-worker migrate`");
  return false;
}

int migrate_command(const common_flags& common) {
  auto loaded = load_or_report(common);
  if (!loaded)
    return exit_usage;
  const config& c = *loaded;
  auto settings = settings_of(c);
  settings.deadline = std::max(settings.deadline, migrate_deadline);
  try {
    auto applied = migrate(settings);
    for (int version : applied)
      log::info("migrate.applied", {{"version", version}});
    log::info("migrate.done", {{"applied", applied.size()},
                               {"version", latest_schema_version()}});
    return exit_ok;
  } catch (const queue_error& e) {
    print_error("migrate failed on " + describe_url(c.database_url) + ": " +
                e.what());
    return exit_runtime;
  }
}

/// Checks the fields the way a worker with the same configuration will,
/// so that a mistake is reported now instead of as a failed row later.
/// The backend must be one this configuration defines; an empty one is
/// default_backend, which the configuration has already checked.
std::optional<std::string> check_request(const enqueue_request& request,
                                         const config& c) {
  std::set<std::string> names;
  for (const auto& entry : c.backends)
    names.insert(entry.first);
  if (!request.backend.empty() && names.count(request.backend) == 0)
    return "--backend " + quote_value(request.backend) +
           " names no configured backend (configured: " +
           join_names(c.backends) + ")";
  job j;
  j.prompt = request.prompt;
  j.backend = request.backend;
  j.width = request.width;
  j.height = request.height;
  j.steps = request.steps;
  return validate(j, c.limits, names, c.default_backend);
}

int enqueue_command(const common_flags& common,
                    const enqueue_request& request) {
  auto loaded = load_or_report(common);
  if (!loaded)
    return exit_usage;
  const config& c = *loaded;
  if (auto problem = check_request(request, c)) {
    print_error(*problem);
    return exit_usage;
  }
  if (request.count < 1 || request.count > max_enqueue_count) {
    print_error("--count " + std::to_string(request.count) + " is outside 1.." +
                std::to_string(max_enqueue_count));
    return exit_usage;
  }
  try {
    if (!schema_ready(c))
      return exit_runtime;
    for (const auto& id : enqueue(settings_of(c), request))
      std::cout << id << '\n';
    return exit_ok;
  } catch (const queue_error& e) {
    print_error("enqueue failed on " + describe_url(c.database_url) + ": " +
                e.what());
    return exit_runtime;
  }
}

int status_command(const common_flags& common) {
  auto loaded = load_or_report(common);
  if (!loaded)
    return exit_usage;
  const config& c = *loaded;
  try {
    if (!schema_ready(c))
      return exit_runtime;
    auto counts = queue_status(settings_of(c));
    // The four states always appear, so a script can read a zero.
    std::map<std::string, std::int64_t> shown = {
        {"pending", 0}, {"running", 0}, {"done", 0}, {"failed", 0}};
    for (const auto& [status, count] : counts.by_status)
      shown[status] = count;
    for (const char* status : {"pending", "running", "done", "failed"}) {
      std::printf("%-8s %lld\n", status, static_cast<long long>(shown[status]));
      shown.erase(status);
    }
    for (const auto& [status, count] : shown)  // states a newer schema adds
      std::printf("%-8s %lld\n", status.c_str(), static_cast<long long>(count));
    if (counts.oldest_pending_seconds)
      std::printf("oldest pending: %.1fs\n", *counts.oldest_pending_seconds);
    else
      std::printf("oldest pending: none\n");
    std::printf("scheduled later: %lld\n",
                static_cast<long long>(counts.scheduled_pending));
    return exit_ok;
  } catch (const queue_error& e) {
    print_error("status failed on " + describe_url(c.database_url) + ": " +
                e.what());
    return exit_runtime;
  }
}

// ---- the parser -------------------------------------------------------

void add_common(CLI::App* command, common_flags& common) {
  command->add_option("--config", common.config_file,
                      "TOML configuration file (default: $IMAGEN_CONFIG, "
                      "else built-in defaults)");
  command->add_option("--database-url", common.database_url,
                      "PostgreSQL URL (default: $IMAGEN_DATABASE_URL, else "
                      "libpq's PG* variables)");
}

int run_cli(int argc, char** argv) {
  CLI::App app{"imagen-worker: consumes image-generation jobs from PostgreSQL"};
  app.set_version_flag("--version", std::string(IMAGEN_VERSION));
  app.require_subcommand(1);

  common_flags common;
  flag_overrides run_flags;
  auto* run = app.add_subcommand("run", "run the worker until stopped");
  add_common(run, common);
  run->add_option("--pool-size", run_flags.pool_size,
                  "number of CPU slots (pool.size)");
  run->add_option("--gpus", run_flags.gpus,
                  "GPU indexes, e.g. 0,1; \"\" for CPU slots (pool.gpus)");
  run->add_flag("--exit-when-idle", run_flags.exit_when_idle,
                "drain the queue, write every outcome, then exit 0");
  run->add_option("--log-format", run_flags.log_format, "text or json");

  auto* migrate_cmd =
      app.add_subcommand("migrate", "create or upgrade the imagen schema");
  add_common(migrate_cmd, common);

  enqueue_request request;
  std::optional<std::int64_t> seed;
  auto* enqueue_cmd =
      app.add_subcommand("enqueue", "insert jobs; prints their ids");
  add_common(enqueue_cmd, common);
  enqueue_cmd->add_option("--prompt", request.prompt, "what to draw")
      ->required();
  enqueue_cmd->add_option("--owner", request.owner, "owner_user_id")
      ->capture_default_str();
  enqueue_cmd->add_option("--backend", request.backend,
                          "backend name (default: default_backend)");
  enqueue_cmd->add_option("--model", request.model, "model for the backend");
  enqueue_cmd->add_option("--style", request.style, "style for the backend");
  enqueue_cmd->add_option("--width", request.width, "multiple of 8");
  enqueue_cmd->add_option("--height", request.height, "multiple of 8");
  enqueue_cmd->add_option("--steps", request.steps, "generation steps");
  enqueue_cmd->add_option("--seed", seed,
                          "seed of the first job; the next get seed+1, ...");
  enqueue_cmd->add_option("--count", request.count, "how many jobs")
      ->capture_default_str();
  enqueue_cmd->add_option("--priority", request.priority, "higher runs first")
      ->capture_default_str();

  auto* status_cmd = app.add_subcommand(
      "status", "counts per status and the oldest pending job's age");
  add_common(status_cmd, common);

  // CLI11 would only say that a command is required; name the word that
  // was not one.
  if (argc > 1 && argv[1][0] != '-') {
    auto commands = app.get_subcommands([](CLI::App*) { return true; });
    bool known =
        std::any_of(commands.begin(), commands.end(),
                    [&](CLI::App* c) { return c->check_name(argv[1]); });
    if (!known) {
      print_error(std::string("unknown command \"") + argv[1] +
                  "\" (use run, migrate, enqueue or status; --help)");
      return exit_usage;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help and the version itself; any other parse error is
    // bad usage, whatever number CLI11 would exit with.
    return app.exit(e) == 0 ? exit_ok : exit_usage;
  }

  if (run->parsed())
    return run_command(common, run_flags);
  if (migrate_cmd->parsed())
    return migrate_command(common);
  if (enqueue_cmd->parsed()) {
    request.seed = seed;
    return enqueue_command(common, request);
  }
  return status_command(common);
}

}  // namespace
}  // namespace imagen

int main(int argc, char** argv) {
  // A log reader that goes away (`run 2>&1 | head`) must not kill the
  // worker with SIGPIPE and strand its claims until the lease runs out;
  // a failed write to stderr is dropped instead.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return imagen::run_cli(argc, argv);
  } catch (const std::exception& e) {
    imagen::print_error(std::string("unexpected failure: ") + e.what());
    return imagen::exit_runtime;
  }
}
