// load_config: defaults, the precedence file < environment < flags, and
// the message of every configuration error.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "config/command_argv.hpp"
#include "config/load.hpp"
#include "config/quote.hpp"
#include "core/command_backend.hpp"
#include "tests/support/process.hpp"

namespace imagen {
namespace {

using namespace std::chrono_literals;

class config_load : public ::testing::Test {
 protected:
  /// Writes `text` to a file of the test's own directory; returns its path.
  std::string write_file(const std::string& text,
                         const std::string& name = "worker.toml") {
    auto path = (dir_.path() / name).string();
    std::ofstream(path) << text;
    return path;
  }

  /// Writes a shell script `name` with permission bits `mode` into the
  /// test's directory, or into `sub` below it; returns its path.
  std::string write_program(const std::string& name, mode_t mode = 0755,
                            const std::string& sub = "") {
    auto dir = sub.empty() ? dir_.path() : dir_.path() / sub;
    std::filesystem::create_directories(dir);
    auto path = (dir / name).string();
    std::ofstream(path) << "#!/bin/sh\nexit 0\n";
    ::chmod(path.c_str(), mode);
    return path;
  }

  /// A file holding one command backend `x` with `argv` (a TOML array).
  std::string command_backend(const std::string& argv) {
    return "[backends.x]\nkind = \"command\"\nargv = " + argv + "\n";
  }

  load_inputs with_file(const std::string& text) {
    load_inputs inputs;
    inputs.config_file = write_file(text);
    return inputs;
  }

  /// The config_error message of loading `inputs`; fails the test when
  /// loading succeeds.
  static std::string error_of(const load_inputs& inputs) {
    try {
      load_config(inputs);
    } catch (const config_error& e) {
      return e.what();
    }
    ADD_FAILURE() << "load_config accepted the inputs";
    return "";
  }

  std::string file_error(const std::string& text) {
    return error_of(with_file(text));
  }

  std::string env_error(const std::string& name, const std::string& value) {
    load_inputs inputs;
    inputs.environment[name] = value;
    return error_of(inputs);
  }

  test::temp_dir dir_{"imagen-config-test"};
};

// ---- defaults ---------------------------------------------------------

TEST_F(config_load, without_file_environment_or_flags_gives_the_defaults) {
  auto c = load_config(load_inputs{});

  EXPECT_EQ(c.database_url, "");
  EXPECT_EQ(c.poll_interval, defaults::poll_interval);
  EXPECT_EQ(c.job_timeout, defaults::job_timeout);
  EXPECT_EQ(c.lease, defaults::lease);
  EXPECT_EQ(c.shutdown_grace, defaults::shutdown_grace);
  EXPECT_EQ(c.max_attempts, defaults::max_attempts);
  EXPECT_EQ(c.retry_base, defaults::retry_base);
  EXPECT_EQ(c.retry_cap, defaults::retry_cap);
  EXPECT_EQ(c.restart_intensity, defaults::restart_intensity);
  EXPECT_EQ(c.restart_period, defaults::restart_period);
  EXPECT_EQ(c.db_timeout, defaults::db_timeout);
  EXPECT_TRUE(c.gpus.empty());
  EXPECT_EQ(c.slots_per_gpu, 1);
  EXPECT_EQ(c.pool_size, static_cast<int>(std::max(
                             1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(c.slot_count(), c.pool_size);
  EXPECT_EQ(c.output_dir, "var/images");
  EXPECT_EQ(c.default_backend, "procedural");
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_EQ(c.backends.at("procedural").kind, "procedural");
  EXPECT_EQ(c.limits.max_prompt_chars, 4000);
  EXPECT_EQ(c.limits.max_side, 4096);
  EXPECT_EQ(c.limits.max_steps, 150);
  EXPECT_EQ(c.log_format, "text");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_FALSE(c.exit_when_idle);
}

TEST_F(config_load, the_shipped_file_documents_exactly_the_defaults) {
  load_inputs inputs;
  inputs.config_file =
      std::string(IMAGEN_SOURCE_DIR) + "/config/imagen-worker.toml";
  auto shipped = load_config(inputs);
  auto builtin = load_config(load_inputs{});

  EXPECT_EQ(shipped.poll_interval, builtin.poll_interval);
  EXPECT_EQ(shipped.job_timeout, builtin.job_timeout);
  EXPECT_EQ(shipped.lease, builtin.lease);
  EXPECT_EQ(shipped.shutdown_grace, builtin.shutdown_grace);
  EXPECT_EQ(shipped.max_attempts, builtin.max_attempts);
  EXPECT_EQ(shipped.retry_base, builtin.retry_base);
  EXPECT_EQ(shipped.retry_cap, builtin.retry_cap);
  EXPECT_EQ(shipped.restart_intensity, builtin.restart_intensity);
  EXPECT_EQ(shipped.restart_period, builtin.restart_period);
  EXPECT_EQ(shipped.db_timeout, builtin.db_timeout);
  EXPECT_EQ(shipped.gpus, builtin.gpus);
  EXPECT_EQ(shipped.slots_per_gpu, builtin.slots_per_gpu);
  EXPECT_EQ(shipped.pool_size, builtin.pool_size);
  EXPECT_EQ(shipped.output_dir, builtin.output_dir);
  EXPECT_EQ(shipped.default_backend, builtin.default_backend);
  EXPECT_EQ(shipped.backends.size(), builtin.backends.size());
  EXPECT_EQ(shipped.limits.max_side, builtin.limits.max_side);
  EXPECT_EQ(shipped.log_format, builtin.log_format);
  EXPECT_EQ(shipped.log_level, builtin.log_level);
}

// ---- reading every key ------------------------------------------------

TEST_F(config_load, the_file_sets_every_key) {
  write_program("sd");
  auto inputs = with_file(R"(
default_backend = "sd"
[worker]
poll_interval = "250ms"
job_timeout = "2m"
lease = "30s"
shutdown_grace = "0s"
max_attempts = 7
retry_base = "1s"
retry_cap = "1h"
restart_intensity = 2
restart_period = "10s"
db_timeout = "3s"
[pool]
gpus = [2, 0]
slots_per_gpu = 3
size = 5
[output]
dir = "/srv/images"
[limits]
max_prompt_chars = 100
max_side = 1024
max_steps = 50
[log]
format = "json"
level = "debug"
[backends.sd]
kind = "command"
argv = ["sd", "-p", "{prompt}", "-o", "{output}"]
timeout = "10m"
env = { HF_HOME = "/srv/cache" }
[backends.bench]
kind = "null"
delay = "20ms"
)");
  inputs.environment["PATH"] = dir_.path().string();
  auto c = load_config(inputs);

  EXPECT_EQ(c.poll_interval, 250ms);
  EXPECT_EQ(c.job_timeout, 2min);
  EXPECT_EQ(c.lease, 30s);
  EXPECT_EQ(c.shutdown_grace, 0s);
  EXPECT_EQ(c.max_attempts, 7);
  EXPECT_EQ(c.retry_base, 1s);
  EXPECT_EQ(c.retry_cap, 1h);
  EXPECT_EQ(c.restart_intensity, 2);
  EXPECT_EQ(c.restart_period, 10s);
  EXPECT_EQ(c.db_timeout, 3s);
  EXPECT_EQ(c.gpus, (std::vector<int>{2, 0}));
  EXPECT_EQ(c.slots_per_gpu, 3);
  EXPECT_EQ(c.pool_size, 5);
  EXPECT_EQ(c.output_dir, "/srv/images");
  EXPECT_EQ(c.default_backend, "sd");
  EXPECT_EQ(c.limits.max_prompt_chars, 100);
  EXPECT_EQ(c.limits.max_side, 1024);
  EXPECT_EQ(c.limits.max_steps, 50);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.log_level, "debug");

  ASSERT_EQ(c.backends.size(), 3u);  // sd, bench and the built-in one
  const auto& sd = c.backends.at("sd");
  EXPECT_EQ(sd.name, "sd");
  EXPECT_EQ(sd.kind, "command");
  EXPECT_EQ(sd.argv, (std::vector<std::string>{"sd", "-p", "{prompt}", "-o",
                                               "{output}"}));
  EXPECT_EQ(sd.timeout, std::optional<milliseconds>(10min));
  EXPECT_EQ(sd.env.at("HF_HOME"), "/srv/cache");
  EXPECT_EQ(c.backends.at("bench").kind, "null");
  EXPECT_EQ(c.backends.at("bench").delay, 20ms);
  EXPECT_EQ(c.backends.at("procedural").kind, "procedural");
}

TEST_F(config_load, gpus_decide_the_slot_count_and_pool_size_is_ignored) {
  auto c =
      load_config(with_file("[pool]\ngpus = [0, 1]\nslots_per_gpu = 2\n"
                            "size = 7\n"));

  EXPECT_EQ(c.slot_count(), 4);
  EXPECT_EQ(c.slot_gpu(0), std::optional<int>(0));
  EXPECT_EQ(c.slot_gpu(1), std::optional<int>(0));
  EXPECT_EQ(c.slot_gpu(2), std::optional<int>(1));
  EXPECT_EQ(c.slot_gpu(3), std::optional<int>(1));
}

TEST_F(config_load, a_file_backend_may_replace_the_builtin_procedural_one) {
  auto c =
      load_config(with_file("[backends.procedural]\nkind = \"command\"\n"
                            "argv = [\"/bin/sh\", \"{output}\"]\n"));

  EXPECT_EQ(c.backends.at("procedural").kind, "command");
}

TEST_F(config_load, every_scalar_key_has_an_environment_variable) {
  load_inputs inputs;
  inputs.environment = {
      {"IMAGEN_DATABASE_URL", "postgresql://u@127.0.0.1/db"},
      {"IMAGEN_WORKER_POLL_INTERVAL", "1s"},
      {"IMAGEN_WORKER_JOB_TIMEOUT", "3m"},
      {"IMAGEN_WORKER_LEASE", "90s"},
      {"IMAGEN_WORKER_SHUTDOWN_GRACE", "5s"},
      {"IMAGEN_WORKER_MAX_ATTEMPTS", "9"},
      {"IMAGEN_WORKER_RETRY_BASE", "2s"},
      {"IMAGEN_WORKER_RETRY_CAP", "2m"},
      {"IMAGEN_WORKER_RESTART_INTENSITY", "4"},
      {"IMAGEN_WORKER_RESTART_PERIOD", "2m"},
      {"IMAGEN_WORKER_DB_TIMEOUT", "4s"},
      {"IMAGEN_POOL_GPUS", "0,1"},
      {"IMAGEN_POOL_SLOTS_PER_GPU", "2"},
      {"IMAGEN_POOL_SIZE", "6"},
      {"IMAGEN_OUTPUT_DIR", "/tmp/out"},
      {"IMAGEN_DEFAULT_BACKEND", "procedural"},
      {"IMAGEN_LIMITS_MAX_PROMPT_CHARS", "10"},
      {"IMAGEN_LIMITS_MAX_SIDE", "512"},
      {"IMAGEN_LIMITS_MAX_STEPS", "20"},
      {"IMAGEN_LOG_FORMAT", "json"},
      {"IMAGEN_LOG_LEVEL", "warn"},
      {"IMAGEN_TEST_ANYTHING", "tests own this prefix"},
      {"PATH", "/usr/bin"},
  };
  auto c = load_config(inputs);

  EXPECT_EQ(c.database_url, "postgresql://u@127.0.0.1/db");
  EXPECT_EQ(c.poll_interval, 1s);
  EXPECT_EQ(c.job_timeout, 3min);
  EXPECT_EQ(c.lease, 90s);
  EXPECT_EQ(c.shutdown_grace, 5s);
  EXPECT_EQ(c.max_attempts, 9);
  EXPECT_EQ(c.retry_base, 2s);
  EXPECT_EQ(c.retry_cap, 2min);
  EXPECT_EQ(c.restart_intensity, 4);
  EXPECT_EQ(c.restart_period, 2min);
  EXPECT_EQ(c.db_timeout, 4s);
  EXPECT_EQ(c.gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(c.slots_per_gpu, 2);
  EXPECT_EQ(c.pool_size, 6);
  EXPECT_EQ(c.output_dir, "/tmp/out");
  EXPECT_EQ(c.limits.max_prompt_chars, 10);
  EXPECT_EQ(c.limits.max_side, 512);
  EXPECT_EQ(c.limits.max_steps, 20);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.log_level, "warn");
}

TEST_F(config_load, environment_names_follow_the_keys) {
  EXPECT_EQ(environment_name("worker.poll_interval"),
            "IMAGEN_WORKER_POLL_INTERVAL");
  EXPECT_EQ(environment_name("default_backend"), "IMAGEN_DEFAULT_BACKEND");
}

// ---- precedence -------------------------------------------------------

TEST_F(config_load, environment_overrides_the_file_and_flags_override_both) {
  auto inputs = with_file(
      "[pool]\nsize = 2\n[log]\nformat = \"json\"\n[worker]\nlease = "
      "\"30s\"\n");

  EXPECT_EQ(load_config(inputs).pool_size, 2);
  EXPECT_EQ(load_config(inputs).lease, 30s);

  inputs.environment = {{"IMAGEN_POOL_SIZE", "3"},
                        {"IMAGEN_LOG_FORMAT", "text"}};
  EXPECT_EQ(load_config(inputs).pool_size, 3);
  EXPECT_EQ(load_config(inputs).log_format, "text");
  EXPECT_EQ(load_config(inputs).lease, 30s);  // only in the file

  inputs.flags.pool_size = 4;
  inputs.flags.log_format = "json";
  EXPECT_EQ(load_config(inputs).pool_size, 4);
  EXPECT_EQ(load_config(inputs).log_format, "json");
}

TEST_F(config_load, the_url_flag_overrides_the_environment) {
  load_inputs inputs;
  inputs.environment = {{"IMAGEN_DATABASE_URL", "postgresql:///from_env"}};
  EXPECT_EQ(load_config(inputs).database_url, "postgresql:///from_env");

  inputs.flags.database_url = "postgresql:///from_flag";
  EXPECT_EQ(load_config(inputs).database_url, "postgresql:///from_flag");
}

TEST_F(config_load, gpus_flag_overrides_and_an_empty_one_asks_for_cpu) {
  auto inputs = with_file("[pool]\ngpus = [0]\nsize = 3\n");
  inputs.environment = {{"IMAGEN_POOL_GPUS", "1,2"}};
  EXPECT_EQ(load_config(inputs).gpus, (std::vector<int>{1, 2}));

  inputs.flags.gpus = "3";
  EXPECT_EQ(load_config(inputs).gpus, std::vector<int>{3});

  inputs.flags.gpus = "";
  auto c = load_config(inputs);
  EXPECT_TRUE(c.gpus.empty());
  EXPECT_EQ(c.slot_count(), 3);
}

TEST_F(config_load, imagen_config_names_the_file_unless_a_flag_does) {
  load_inputs inputs;
  inputs.environment = {
      {"IMAGEN_CONFIG", write_file("[pool]\nsize = 11\n", "env.toml")}};
  EXPECT_EQ(load_config(inputs).pool_size, 11);

  inputs.config_file = write_file("[pool]\nsize = 12\n", "flag.toml");
  EXPECT_EQ(load_config(inputs).pool_size, 12);
}

TEST_F(config_load, exit_when_idle_comes_from_its_flag) {
  load_inputs inputs;
  inputs.flags.exit_when_idle = true;
  EXPECT_TRUE(load_config(inputs).exit_when_idle);
}

// ---- durations --------------------------------------------------------

TEST(config_duration, reads_whole_numbers_with_a_unit) {
  EXPECT_EQ(parse_duration("k", "250ms"), 250ms);
  EXPECT_EQ(parse_duration("k", "5s"), 5s);
  EXPECT_EQ(parse_duration("k", "5m"), 5min);
  EXPECT_EQ(parse_duration("k", "1h"), 1h);
  EXPECT_EQ(parse_duration("k", "0s"), 0ms);
}

TEST(config_duration, refuses_anything_else_naming_key_and_value) {
  for (const char* text :
       {"soon", "", "5", "-5s", "5 s", "1.5s", "5sec", "s", "10d", " 5s"}) {
    try {
      parse_duration("worker.lease", text);
      ADD_FAILURE() << "accepted \"" << text << "\"";
    } catch (const config_error& e) {
      EXPECT_EQ(std::string(e.what()),
                "worker.lease: \"" + std::string(text) +
                    "\" is not a duration (use 250ms, 5s, 5m, 1h)");
    }
  }
}

TEST(config_duration, refuses_a_value_that_overflows) {
  EXPECT_THROW(parse_duration("k", "9999999999999999999h"), config_error);
  EXPECT_THROW(parse_duration("k", "9999999999999999h"), config_error);
}

TEST(config_duration, accepts_up_to_30_days_and_refuses_longer) {
  EXPECT_EQ(parse_duration("k", "720h"), max_duration);
  EXPECT_EQ(parse_duration("k", "43200m"), max_duration);
  EXPECT_EQ(parse_duration("k", "2592000s"), max_duration);
  EXPECT_EQ(parse_duration("k", "2592000000ms"), max_duration);
  EXPECT_EQ(max_duration, std::chrono::hours(24 * 30));

  for (const char* text : {"721h", "43201m", "2592001s", "2592000001ms",
                           "7000000h", "9999999999999999999h"}) {
    try {
      parse_duration("worker.lease", text);
      ADD_FAILURE() << "accepted \"" << text << "\"";
    } catch (const config_error& e) {
      EXPECT_EQ(std::string(e.what()),
                "worker.lease: \"" + std::string(text) +
                    "\" is longer than 720h (30 days), the longest duration "
                    "accepted");
    }
  }
}

TEST(config_duration, formats_in_the_largest_whole_unit) {
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(5s), "5s");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(5min), "5m");
  EXPECT_EQ(format_duration(2h), "2h");
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(parse_duration("k", format_duration(1500ms)), 1500ms);
}

// ---- errors in the file -----------------------------------------------

TEST_F(config_load, a_bad_duration_names_key_value_and_place) {
  auto message = file_error("[worker]\nlease = \"soon\"\n");
  EXPECT_NE(message.find("worker.toml:2: "), std::string::npos) << message;
  EXPECT_NE(message.find("worker.lease: \"soon\" is not a duration (use "
                         "250ms, 5s, 5m, 1h)"),
            std::string::npos)
      << message;
}

TEST_F(config_load, a_duration_must_be_a_string) {
  EXPECT_NE(file_error("[worker]\nlease = 60\n")
                .find("worker.lease: 60 is not a duration"),
            std::string::npos);
}

TEST_F(config_load, a_zero_duration_is_refused_where_it_makes_no_sense) {
  for (const char* key : {"poll_interval", "job_timeout", "lease", "db_timeout",
                          "restart_period"}) {
    for (const char* zero : {"0s", "0ms", "0h"}) {
      SCOPED_TRACE(std::string(key) + " = " + zero);
      auto message =
          file_error("[worker]\n" + std::string(key) + " = \"" + zero + "\"\n");
      EXPECT_NE(message.find("worker." + std::string(key) +
                             ": 0s must be greater than 0"),
                std::string::npos)
          << message;
      EXPECT_EQ(env_error(environment_name("worker." + std::string(key)), zero),
                environment_name("worker." + std::string(key)) +
                    ": 0s must be greater than 0");
    }
  }
  EXPECT_NE(file_error("[backends.x]\nkind = \"command\"\n"
                       "argv = [\"{output}\"]\ntimeout = \"0ms\"\n")
                .find("backends.x.timeout: 0s must be greater than 0"),
            std::string::npos);
}

TEST_F(config_load, a_zero_duration_is_allowed_where_it_means_something) {
  // No grace: jobs in flight are given back at once on SIGTERM.
  EXPECT_EQ(load_config(with_file("[worker]\nshutdown_grace = \"0s\"\n"))
                .shutdown_grace,
            0ms);
  // No backoff: a failed job is retried at once.
  auto c = load_config(
      with_file("[worker]\nretry_base = \"0s\"\nretry_cap = \"0s\"\n"));
  EXPECT_EQ(c.retry_base, 0ms);
  EXPECT_EQ(c.retry_cap, 0ms);
  EXPECT_EQ(
      load_config(with_file("[worker]\nretry_base = \"0ms\"\n")).retry_cap,
      defaults::retry_cap);
  EXPECT_EQ(load_config(with_file("[backends.n]\nkind = \"null\"\ndelay = "
                                  "\"0s\"\n"))
                .backends.at("n")
                .delay,
            0ms);
}

TEST_F(config_load, every_duration_key_is_capped_at_30_days) {
  for (const char* key :
       {"poll_interval", "job_timeout", "lease", "shutdown_grace", "retry_base",
        "retry_cap", "restart_period", "db_timeout"}) {
    SCOPED_TRACE(key);
    auto message =
        file_error("[worker]\n" + std::string(key) + " = \"7000000h\"\n");
    EXPECT_NE(message.find("worker." + std::string(key) +
                           ": \"7000000h\" is longer than 720h (30 days)"),
              std::string::npos)
        << message;
    const auto variable = environment_name("worker." + std::string(key));
    EXPECT_EQ(env_error(variable, "721h"),
              variable +
                  ": \"721h\" is longer than 720h (30 days), the longest "
                  "duration accepted");
  }
  EXPECT_NE(file_error("[backends.x]\nkind = \"command\"\nargv = "
                       "[\"/bin/sh\", \"{output}\"]\ntimeout = \"721h\"\n")
                .find("backends.x.timeout: \"721h\" is longer than 720h"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.n]\nkind = \"null\"\ndelay = \"721h\"\n")
                .find("backends.n.delay: \"721h\" is longer than 720h"),
            std::string::npos);

  // 30 days themselves are accepted, and pass the checks across keys.
  auto c = load_config(
      with_file("[worker]\nlease = \"720h\"\nretry_base = \"720h\"\n"
                "retry_cap = \"720h\"\njob_timeout = \"720h\"\n"
                "db_timeout = \"1h\"\n"));
  EXPECT_EQ(c.lease, max_duration);
  EXPECT_EQ(c.retry_cap, max_duration);
}

TEST_F(config_load, numbers_below_their_minimum_are_refused) {
  EXPECT_NE(file_error("[pool]\nsize = -3\n")
                .find("pool.size: -3 must be at least 1"),
            std::string::npos);
  EXPECT_NE(file_error("[pool]\nslots_per_gpu = 0\n")
                .find("pool.slots_per_gpu: 0 must be at least 1"),
            std::string::npos);
  EXPECT_NE(file_error("[worker]\nmax_attempts = 0\n")
                .find("worker.max_attempts: 0 must be at least 1"),
            std::string::npos);
  EXPECT_NE(file_error("[limits]\nmax_side = 4\n")
                .find("limits.max_side: 4 must be at least 8"),
            std::string::npos);
}

TEST_F(config_load, wrong_types_name_key_and_value) {
  EXPECT_NE(file_error("[pool]\nsize = \"four\"\n")
                .find("pool.size: \"four\" is not an integer"),
            std::string::npos);
  EXPECT_NE(file_error("[pool]\nsize = 99999999999\n")
                .find("pool.size: 99999999999 is out of range"),
            std::string::npos);
  EXPECT_NE(
      file_error("[output]\ndir = 5\n").find("output.dir: 5 is not a string"),
      std::string::npos);
  EXPECT_NE(file_error("[pool]\ngpus = [\"a\"]\n")
                .find("pool.gpus: [ 'a' ] is not a list of GPU indexes"),
            std::string::npos);
  EXPECT_NE(file_error("worker = 5\n").find("worker: 5 is not a table"),
            std::string::npos);
}

TEST_F(config_load, gpu_lists_refuse_negative_and_repeated_indexes) {
  EXPECT_NE(file_error("[pool]\ngpus = [0, -1]\n")
                .find("pool.gpus: -1 is not a GPU index"),
            std::string::npos);
  EXPECT_NE(file_error("[pool]\ngpus = [1, 1]\n")
                .find("pool.gpus: GPU 1 is listed twice"),
            std::string::npos);
}

TEST_F(config_load, choices_list_what_is_allowed) {
  EXPECT_NE(file_error("[log]\nformat = \"xml\"\n")
                .find("log.format: \"xml\" is not one of text, json"),
            std::string::npos);
  EXPECT_NE(file_error("[log]\nlevel = \"loud\"\n")
                .find("log.level: \"loud\" is not one of debug, info, warn, "
                      "error"),
            std::string::npos);
  EXPECT_NE(file_error("[output]\ndir = \"\"\n")
                .find("output.dir: \"\" must not be empty"),
            std::string::npos);
}

TEST_F(config_load, unknown_keys_are_errors_naming_key_and_file) {
  for (const char* text :
       {"[worker]\nleese = \"5s\"\n", "colour = \"red\"\n",
        "[pools]\nsize = 1\n",
        "[backends.sd]\nkind = \"procedural\"\nargz = []\n"}) {
    auto message = file_error(text);
    EXPECT_NE(message.find(dir_.path().string() + "/worker.toml:"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("unknown key "), std::string::npos) << message;
  }
  EXPECT_NE(
      file_error("[worker]\nleese = \"5s\"\n").find("unknown key worker.leese"),
      std::string::npos);
  EXPECT_NE(file_error("[backends.sd]\nkind = \"null\"\nargz = []\n")
                .find("unknown key backends.sd.argz"),
            std::string::npos);
}

TEST_F(config_load, the_database_url_is_not_read_from_the_file) {
  EXPECT_NE(file_error("database_url = \"postgresql://u:secret@h/db\"\n")
                .find("database_url: the database URL is not read from "
                      "the file"),
            std::string::npos);
  EXPECT_EQ(file_error("database_url = \"postgresql://u:secret@h/db\"\n")
                .find("secret"),
            std::string::npos);
}

// A URL libpq cannot read fails every connection the same way: a
// configuration error (exit 2), not a database that is down (exit 1).
TEST_F(config_load, a_database_url_libpq_cannot_read_is_refused) {
  auto message =
      env_error("IMAGEN_DATABASE_URL", "postgresql://u:S3cretPw@h/db?bogus=1");
  EXPECT_EQ(message.rfind("IMAGEN_DATABASE_URL: ", 0), 0u) << message;
  EXPECT_NE(message.find("\"bogus\""), std::string::npos) << message;
  EXPECT_EQ(message.find("S3cretPw"), std::string::npos) << message;

  load_inputs inputs;
  inputs.flags.database_url = "host=h password=S3cretPw dbname";
  message = error_of(inputs);
  EXPECT_EQ(message.rfind("--database-url: ", 0), 0u) << message;
  EXPECT_NE(message.find("dbname"), std::string::npos) << message;
  EXPECT_EQ(message.find("S3cretPw"), std::string::npos) << message;

  inputs.flags.database_url = "host=h PASSWORD=S3cretPw";
  message = error_of(inputs);
  EXPECT_NE(message.find("\"PASSWORD\""), std::string::npos) << message;
  EXPECT_EQ(message.find("S3cretPw"), std::string::npos) << message;
}

// Only connecting can judge a value: these parse and are left to libpq.
TEST_F(config_load, a_database_url_that_parses_is_accepted) {
  for (const char* url : {"postgresql://u:pw@127.0.0.1:99999/db?sslmode=bogus",
                          "host=127.0.0.1 port=99999 sslmode=bogus",
                          "plain_database_name", "postgres:///db"}) {
    load_inputs inputs;
    inputs.flags.database_url = url;
    EXPECT_EQ(load_config(inputs).database_url, url);
  }
}

TEST_F(config_load, syntax_errors_name_file_line_and_column) {
  auto message = file_error("[worker]\nlease = \n");
  EXPECT_EQ(message.rfind(dir_.path().string() + "/worker.toml:2:", 0), 0u)
      << message;
}

TEST_F(config_load, a_missing_file_is_named) {
  load_inputs inputs;
  inputs.config_file = "/nonexistent/imagen.toml";
  EXPECT_NE(error_of(inputs).find("config file \"/nonexistent/imagen.toml\" "
                                  "cannot be read"),
            std::string::npos);
}

TEST_F(config_load, a_directory_as_the_file_is_named_not_read_as_empty) {
  load_inputs inputs;
  inputs.config_file = dir_.path().string();
  EXPECT_EQ(error_of(inputs), "config file \"" + dir_.path().string() +
                                  "\" is a directory, not a file");

  inputs = load_inputs{};
  inputs.environment = {{"IMAGEN_CONFIG", dir_.path().string() + "/"}};
  EXPECT_EQ(error_of(inputs), "config file \"" + dir_.path().string() +
                                  "/\" is a directory, not a file");
}

// ---- backends ---------------------------------------------------------

TEST_F(config_load, a_backend_kind_must_be_known) {
  EXPECT_NE(file_error("[backends.sd]\nkind = \"shell\"\n")
                .find("backends.sd.kind: \"shell\" is not one of "
                      "procedural, command, null"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.sd]\nargv = [\"{output}\"]\n")
                .find("backends.sd.kind is missing"),
            std::string::npos);
}

TEST_F(config_load, a_command_backend_needs_argv_with_output) {
  EXPECT_NE(file_error("[backends.sd]\nkind = \"command\"\n")
                .find("backends.sd.argv is missing"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.sd]\nkind = \"command\"\nargv = [\"sd\", "
                       "\"-p\", \"{prompt}\"]\n")
                .find("backends.sd.argv has no {output}"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.sd]\nkind = \"command\"\nargv = [\"sd\", "
                       "1]\n")
                .find("backends.sd.argv: [ 'sd', 1 ] is not a list of "
                      "strings"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.sd]\nkind = \"command\"\nargv = "
                       "[\"{output}\"]\nenv = { A = 1 }\n")
                .find("backends.sd.env: { A = 1 } is not a table of strings"),
            std::string::npos);
}

TEST_F(config_load, options_that_a_kind_would_ignore_are_refused) {
  EXPECT_NE(file_error("[backends.p]\nkind = \"procedural\"\nargv = "
                       "[\"{output}\"]\n")
                .find("backends.p.argv is not an option of a procedural "
                      "backend"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.c]\nkind = \"command\"\nargv = "
                       "[\"{output}\"]\ndelay = \"1s\"\n")
                .find("backends.c.delay is not an option of a command "
                      "backend"),
            std::string::npos);
  EXPECT_NE(file_error("[backends.n]\nkind = \"null\"\ntimeout = \"1s\"\n")
                .find("backends.n.timeout is not an option of a null "
                      "backend"),
            std::string::npos);
}

// The error points at the refused option's line, not at its table's.
TEST_F(config_load, a_refused_option_is_reported_at_its_own_line) {
  auto message = file_error(
      "default_backend = \"n\"\n\n[backends.n]\nkind = "
      "\"null\"\ntimeout = \"1s\"\n");
  EXPECT_NE(message.find("worker.toml:5: backends.n.timeout is not an "
                         "option of a null backend"),
            std::string::npos)
      << message;
}

TEST_F(config_load, default_backend_must_name_a_backend) {
  auto message = file_error("default_backend = \"sd\"\n");
  EXPECT_NE(message.find("default_backend: \"sd\" names no backend "
                         "(configured: procedural)"),
            std::string::npos)
      << message;

  load_inputs inputs;
  inputs.environment = {{"IMAGEN_DEFAULT_BACKEND", "missing"}};
  EXPECT_NE(error_of(inputs).find("default_backend: \"missing\" names no "
                                  "backend"),
            std::string::npos);
}

// ---- checks across keys -----------------------------------------------

TEST_F(config_load, the_lease_must_outlast_a_slow_heartbeat) {
  auto message = file_error(
      "[worker]\nlease = \"12s\"\ndb_timeout = "
      "\"10s\"\n");
  EXPECT_NE(message.find("worker.lease: 12s is too short for "
                         "worker.db_timeout 10s"),
            std::string::npos)
      << message;

  EXPECT_EQ(load_config(with_file("[worker]\nlease = \"2s\"\ndb_timeout = "
                                  "\"1s\"\n"))
                .lease,
            2s);
}

TEST_F(config_load, retry_cap_must_not_be_below_retry_base) {
  EXPECT_NE(file_error("[worker]\nretry_base = \"1m\"\nretry_cap = \"5s\"\n")
                .find("worker.retry_cap: 5s is shorter than "
                      "worker.retry_base 1m"),
            std::string::npos);
}

TEST_F(config_load, pool_size_flag_with_gpus_is_an_error) {
  load_inputs inputs;
  inputs.flags.gpus = "0,1";
  inputs.flags.pool_size = 4;
  EXPECT_NE(error_of(inputs).find("--pool-size 4 conflicts with pool.gpus "
                                  "0,1"),
            std::string::npos);
}

// ---- errors in the environment and the flags ---------------------------

TEST_F(config_load, environment_errors_name_the_variable_and_value) {
  EXPECT_EQ(env_error("IMAGEN_WORKER_LEASE", "soon"),
            "IMAGEN_WORKER_LEASE: \"soon\" is not a duration (use 250ms, 5s, "
            "5m, 1h)");
  EXPECT_EQ(env_error("IMAGEN_POOL_SIZE", "-3"),
            "IMAGEN_POOL_SIZE: -3 must be at least 1");
  EXPECT_EQ(env_error("IMAGEN_POOL_SIZE", "4x"),
            "IMAGEN_POOL_SIZE: \"4x\" is not an integer");
  EXPECT_EQ(env_error("IMAGEN_POOL_GPUS", "0;1"),
            "IMAGEN_POOL_GPUS: \"0;1\" is not a list of GPU indexes (use 0,1)");
  EXPECT_EQ(env_error("IMAGEN_POOL_GPUS", "0,"),
            "IMAGEN_POOL_GPUS: \"0,\" is not a list of GPU indexes (use 0,1)");
  EXPECT_EQ(env_error("IMAGEN_LOG_FORMAT", "xml"),
            "IMAGEN_LOG_FORMAT: \"xml\" is not one of text, json");
}

TEST_F(config_load, an_unknown_imagen_variable_is_an_error) {
  auto message = env_error("IMAGEN_WORKER_LEESE", "5s");
  EXPECT_EQ(message.rfind("IMAGEN_WORKER_LEESE is not a configuration "
                          "variable",
                          0),
            0u)
      << message;
  EXPECT_EQ(message.find("5s"), std::string::npos)
      << "the value may be a secret: " << message;
}

TEST_F(config_load, flag_errors_name_the_flag) {
  load_inputs inputs;
  inputs.flags.pool_size = 0;
  EXPECT_EQ(error_of(inputs), "--pool-size: 0 must be at least 1");

  inputs = load_inputs{};
  inputs.flags.log_format = "yaml";
  EXPECT_EQ(error_of(inputs),
            "--log-format: \"yaml\" is not one of text, json");

  inputs = load_inputs{};
  inputs.flags.gpus = "a";
  EXPECT_EQ(error_of(inputs),
            "--gpus: \"a\" is not a list of GPU indexes (use 0,1)");
}

// ---- a command backend's argv --------------------------------------

TEST_F(config_load, an_empty_argv_or_program_is_refused) {
  EXPECT_NE(file_error(command_backend("[]"))
                .find("worker.toml:3: backends.x.argv: [] is empty"),
            std::string::npos);
  EXPECT_NE(file_error(command_backend("[\"\", \"{output}\"]"))
                .find("worker.toml:3: backends.x.argv[0]: \"\" is empty: it "
                      "names the program to run"),
            std::string::npos);
}

TEST_F(config_load, a_program_without_slash_is_searched_in_the_path) {
  write_program("gen", 0755, "bin");
  auto inputs = with_file(command_backend("[\"gen\", \"{output}\"]"));

  inputs.environment["PATH"] = (dir_.path() / "bin").string();
  EXPECT_EQ(load_config(inputs).backends.at("x").argv[0], "gen");

  inputs.environment["PATH"] = "/nonexistent:" + dir_.path().string();
  auto message = error_of(inputs);
  EXPECT_NE(message.find("worker.toml:3: backends.x.argv[0]: \"gen\" is not "
                         "an executable found in PATH (PATH=\"/nonexistent:" +
                         dir_.path().string() + "\")"),
            std::string::npos)
      << message;
}

TEST_F(config_load, the_search_skips_what_execvp_would_skip) {
  // Not executable, a directory, then the real program: posix_spawnp
  // passes over the first two, so the configuration must too.
  write_program("gen", 0644, "a");
  std::filesystem::create_directories(dir_.path() / "b" / "gen");
  write_program("gen", 0755, "c");
  auto inputs = with_file(command_backend("[\"gen\", \"{output}\"]"));
  const auto dir = dir_.path().string();

  inputs.environment["PATH"] = dir + "/a:" + dir + "/b:" + dir + "/c";
  EXPECT_NO_THROW(load_config(inputs));

  inputs.environment["PATH"] = dir + "/a:" + dir + "/b";
  EXPECT_NE(error_of(inputs).find("\"gen\" is not an executable found in "
                                  "PATH"),
            std::string::npos);
}

TEST_F(config_load, without_path_the_default_search_path_is_used) {
  // As for execvp: with PATH unset, the C library's /bin:/usr/bin.
  auto inputs = with_file(command_backend("[\"sh\", \"{output}\"]"));
  EXPECT_NO_THROW(load_config(inputs));

  inputs = with_file(command_backend("[\"imagen-no-such-gen\", \"{output}\"]"));
  auto message = error_of(inputs);
  EXPECT_NE(message.find("backends.x.argv[0]: \"imagen-no-such-gen\" is not "
                         "an executable found in PATH (PATH is unset: "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("/bin"), std::string::npos) << message;
}

TEST_F(config_load, programs_are_looked_for_only_when_asked) {
  const auto missing = dir_.path().string() + "/missing/gen";
  auto inputs =
      with_file(command_backend("[\"" + missing + "\", \"{output}\"]"));
  inputs.check_programs = false;
  EXPECT_NO_THROW(load_config(inputs));

  inputs.check_programs = true;
  EXPECT_NE(error_of(inputs).find("\"" + missing + "\" does not exist"),
            std::string::npos);

  // The rest of a command backend is checked either way.
  inputs = with_file(command_backend("[\"" + missing + "\", \"{promt}\"]"));
  inputs.check_programs = false;
  EXPECT_NE(error_of(inputs).find("unknown placeholder {promt}"),
            std::string::npos);
}

TEST_F(config_load, a_program_with_slash_must_be_an_executable_file) {
  const auto missing = dir_.path().string() + "/missing/gen";
  const auto plain = write_program("plain", 0644);
  const auto dir = dir_.path().string();
  const auto good = write_program("good", 0755);

  EXPECT_NE(file_error(command_backend("[\"" + missing + "\", \"{output}\"]"))
                .find("backends.x.argv[0]: \"" + missing + "\" does not exist"),
            std::string::npos);
  EXPECT_NE(
      file_error(command_backend("[\"" + plain + "\", \"{output}\"]"))
          .find("backends.x.argv[0]: \"" + plain + "\" is not executable"),
      std::string::npos);
  EXPECT_NE(
      file_error(command_backend("[\"" + dir + "\", \"{output}\"]"))
          .find("backends.x.argv[0]: \"" + dir + "\" is not a regular file"),
      std::string::npos);
  EXPECT_NO_THROW(load_config(
      with_file(command_backend("[\"" + good + "\", \"{output}\"]"))));

  // A slash means no search, whatever PATH holds.
  auto inputs = with_file(command_backend("[\"bin/gen\", \"{output}\"]"));
  write_program("gen", 0755, "bin");
  inputs.environment["PATH"] = dir;
  EXPECT_NE(error_of(inputs).find("\"bin/gen\" does not exist"),
            std::string::npos);
}

TEST_F(config_load, the_program_may_not_be_a_placeholder) {
  auto message =
      file_error(command_backend("[\"{model}\", \"-o\", \"{output}\"]"));
  EXPECT_NE(message.find("backends.x.argv[0]: \"{model}\" contains the "
                         "placeholder {model}: the program must be fixed in "
                         "the configuration"),
            std::string::npos)
      << message;
}

TEST_F(config_load, an_unknown_placeholder_is_refused_naming_element) {
  auto message = file_error(
      command_backend("[\"/bin/sh\", \"-p\", \"{promt}\", \"{output}\"]"));
  EXPECT_NE(message.find("worker.toml:3: backends.x.argv[2]: \"{promt}\" has "
                         "an unknown placeholder {promt} (known: {prompt} "
                         "{negative_prompt} {width} {height} {steps} {seed} "
                         "{model} {output} {device})"),
            std::string::npos)
      << message;

  EXPECT_NE(file_error(command_backend("[\"/bin/sh\", \"--size={width}x{hieght}"
                                       "\", \"{output}\"]"))
                .find("backends.x.argv[1]: \"--size={width}x{hieght}\" has an "
                      "unknown placeholder {hieght}"),
            std::string::npos);
  EXPECT_NE(file_error(command_backend("[\"/bin/sh\", \"{Output}\"]"))
                .find("unknown placeholder {Output}"),
            std::string::npos);
  EXPECT_NE(file_error(command_backend("[\"/bin/sh\", \"{output}\", "
                                       "\"{negative-prompt}\"]"))
                .find("unknown placeholder {negative-prompt}"),
            std::string::npos);
}

TEST_F(config_load, braces_that_expand_leaves_alone_are_accepted) {
  // A shell variable, JSON and an empty pair stay literal in the command.
  auto c = load_config(with_file(command_backend(
      R"(["/bin/sh", "-c", 'cp "${HOME}/x.png" "$0"', "{output}",)"
      R"( '{"steps": {steps}}', "{}", "{", "}{"])")));
  EXPECT_EQ(c.backends.at("x").argv.size(), 8u);
}

TEST_F(config_load, output_must_appear_as_a_placeholder) {
  // A near miss is an unknown placeholder; "{ output }" is literal
  // text to expand, so the command would get no image path.
  EXPECT_NE(file_error(command_backend("[\"/bin/sh\", \"{outputs}\"]"))
                .find("unknown placeholder {outputs}"),
            std::string::npos);
  EXPECT_NE(file_error(command_backend("[\"/bin/sh\", \"-o\", \"{ output }\"]"))
                .find("backends.x.argv has no {output}"),
            std::string::npos);
  EXPECT_NO_THROW(load_config(
      with_file(command_backend("[\"/bin/sh\", \"--out={output}.png\"]"))));
}

TEST(config_placeholders, are_exactly_those_the_command_backend_replaces) {
  job j;
  j.prompt = "p";
  j.model = "m";
  j.width = 64;
  j.height = 64;
  j.steps = 10;
  command_spec spec;
  spec.name = "x";
  spec.argv = {"/bin/true"};
  for (const auto& name : command_placeholders())
    spec.argv.push_back("{" + name + "}");
  spec.argv.push_back("{promt}");
  command_backend backend(spec);

  auto argv = backend.expand(j, {}, "/o.png");

  ASSERT_EQ(argv.size(), spec.argv.size());
  for (std::size_t i = 1; i + 1 < argv.size(); ++i)
    EXPECT_NE(argv[i], spec.argv[i]) << spec.argv[i] << " was not replaced";
  EXPECT_EQ(argv.back(), "{promt}");
  EXPECT_EQ(scan_placeholders("{promt}").unknown,
            std::optional<std::string>("{promt}"));
}

TEST(config_placeholders, are_read_the_way_expand_reads_them) {
  auto scan = scan_placeholders("{{output}}-{seed}{x");
  EXPECT_EQ(scan.known, (std::vector<std::string>{"output", "seed"}));
  EXPECT_FALSE(scan.unknown);

  EXPECT_EQ(scan_placeholders("${HOME}/{home}").unknown,
            std::optional<std::string>("{home}"));
  EXPECT_FALSE(scan_placeholders("{\"a\": 1} {} {1} { x }").unknown);
}

// ---- slots ------------------------------------------------------------

TEST_F(config_load, slot_counts_above_1024_are_refused) {
  EXPECT_EQ(load_config(with_file("[pool]\nsize = 1024\n")).slot_count(), 1024);
  EXPECT_NE(file_error("[pool]\nsize = 1025\n")
                .find("pool.size: 1025 is more slots than 1024 (each slot is "
                      "a thread): run more worker processes"),
            std::string::npos);
  EXPECT_EQ(env_error("IMAGEN_POOL_SIZE", "5000"),
            "IMAGEN_POOL_SIZE: 5000 is more slots than 1024 (each slot is a "
            "thread): run more worker processes");

  load_inputs inputs;
  inputs.flags.pool_size = 2000;
  EXPECT_EQ(error_of(inputs),
            "--pool-size: 2000 is more slots than 1024 (each slot is a "
            "thread): run more worker processes");
}

TEST_F(config_load, gpus_times_slots_per_gpu_is_bounded_without_overflow) {
  // Once multiplied in 32 bits into -2 slots.
  EXPECT_NE(file_error("[pool]\ngpus = [0, 1]\nslots_per_gpu = 2147483647\n")
                .find("pool.slots_per_gpu: 2147483647 is more slots than "
                      "1024"),
            std::string::npos);

  EXPECT_EQ(file_error("[pool]\ngpus = [0, 1]\nslots_per_gpu = 600\n"),
            "pool.slots_per_gpu: 600 x 2 GPUs (pool.gpus 0,1) is 1200 slots, "
            "more slots than 1024 (each slot is a thread): run more worker "
            "processes");

  std::string many = "[pool]\nslots_per_gpu = 1024\ngpus = [0";
  for (int gpu = 1; gpu < 4096; ++gpu)
    many += ", " + std::to_string(gpu);
  auto message = file_error(many + "]\n");
  EXPECT_NE(message.find("1024 x 4096 GPUs"), std::string::npos);
  EXPECT_NE(message.find("is 4194304 slots"), std::string::npos);

  auto c =
      load_config(with_file("[pool]\ngpus = [0, 1]\nslots_per_gpu = "
                            "512\n"));
  EXPECT_EQ(c.slot_count(), 1024);
  EXPECT_EQ(c.slot_gpu(1023), std::optional<int>(1));
}

TEST_F(config_load, gpu_lists_from_the_environment_refuse_repeats) {
  EXPECT_EQ(env_error("IMAGEN_POOL_GPUS", "0,1,0"),
            "IMAGEN_POOL_GPUS: GPU 0 is listed twice");
  EXPECT_EQ(env_error("IMAGEN_POOL_GPUS", "-1"),
            "IMAGEN_POOL_GPUS: \"-1\" is not a list of GPU indexes (use 0,1)");
  load_inputs inputs;
  inputs.flags.gpus = "2,2";
  EXPECT_EQ(error_of(inputs), "--gpus: GPU 2 is listed twice");
}

// ---- output.dir -------------------------------------------------------

TEST_F(config_load, output_dir_must_be_valid_utf8) {
  EXPECT_EQ(env_error("IMAGEN_OUTPUT_DIR", "var/im\xe9ges"),
            "IMAGEN_OUTPUT_DIR: \"var/im\\xe9ges\" is not valid UTF-8");
  EXPECT_EQ(env_error("IMAGEN_OUTPUT_DIR", "/srv/\xc3"),
            "IMAGEN_OUTPUT_DIR: \"/srv/\\xc3\" is not valid UTF-8");
  EXPECT_NE(file_error("[output]\ndir = \"a\\u0000b\"\n")
                .find("output.dir: \"a\\x00b\" contains a NUL character"),
            std::string::npos);

  load_inputs inputs;
  inputs.environment = {{"IMAGEN_OUTPUT_DIR", "/srv/images-\xc3\xa9t\xc3\xa9"}};
  EXPECT_EQ(load_config(inputs).output_dir, "/srv/images-\xc3\xa9t\xc3\xa9");
}

TEST_F(config_load, a_relative_output_dir_needs_a_utf8_working_directory) {
  const auto latin1 = dir_.path() / "caf\xe9";
  std::filesystem::create_directories(latin1);
  const auto before = std::filesystem::current_path();
  std::filesystem::current_path(latin1);
  std::string message;
  try {
    load_config(load_inputs{});
  } catch (const config_error& e) {
    message = e.what();
  }
  auto absolute = load_inputs{};
  absolute.environment = {{"IMAGEN_OUTPUT_DIR", "/srv/images"}};
  const bool absolute_loads = load_config(absolute).output_dir == "/srv/images";
  std::filesystem::current_path(before);

  EXPECT_EQ(message, "output.dir: \"var/images\" resolves to \"" +
                         dir_.path().string() +
                         "/caf\\xe9/var/images\", which is not valid UTF-8");
  EXPECT_TRUE(absolute_loads);
}

TEST(config_quote, escapes_what_would_garble_a_message) {
  EXPECT_EQ(quote_value("plain"), "\"plain\"");
  EXPECT_EQ(quote_value("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quote_value("line\nbreak\t"), "\"line\\x0abreak\\x09\"");
  EXPECT_EQ(quote_value("caf\xe9 \xc3\xa9"), "\"caf\\xe9 \xc3\xa9\"");
  EXPECT_EQ(quote_value(std::string("a\0b", 3)), "\"a\\x00b\"");
}

}  // namespace
}  // namespace imagen
