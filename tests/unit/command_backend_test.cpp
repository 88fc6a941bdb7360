// command_backend: the argv template, the environment the command sees,
// and how every way a command can fail becomes a backend_error with the
// right kind and a message an operator can act on.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/command_backend.hpp"
#include "core/png.hpp"
#include "core/validation.hpp"
#include "tests/support/process.hpp"
#include "tests/unit/process_state.hpp"

namespace imagen {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

job sample_job() {
  job j;
  j.id = "6b1f0c3e-2a4d-4e5f-9a8b-7c6d5e4f3a2b";
  j.prompt = "an orchard in spring";
  j.model = "/models/sd-v1-5.gguf";
  j.width = 40;
  j.height = 24;
  j.steps = 12;
  j.seed = -17;
  return j;
}

slot_context on_gpu(int gpu) {
  slot_context where;
  where.slot = 1;
  where.gpu = gpu;
  return where;
}

std::vector<std::uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class command_backend_test : public ::testing::Test {
 protected:
  command_backend_test() {
    std::vector<std::uint8_t> rgb(40 * 24 * 3, 90);
    auto png = encode_png(40, 24, rgb);
    std::ofstream(fixture_, std::ios::binary)
        .write(reinterpret_cast<const char*>(png.data()),
               static_cast<std::streamsize>(png.size()));
    fs::create_directories(scratch_);
  }

  std::string path(const std::string& name) const {
    return (dir_.path() / name).string();
  }

  /// A backend running `script` under /bin/sh with $0 = {output} and the
  /// further placeholders as $1, $2, ...
  command_spec shell_spec(const std::string& script,
                          std::vector<std::string> placeholders = {}) {
    command_spec spec;
    spec.name = "fake";
    spec.argv = {"/bin/sh", "-c", script, "{output}"};
    for (auto& p : placeholders)
      spec.argv.push_back(std::move(p));
    spec.scratch_dir = scratch_.string();
    return spec;
  }

  /// Runs `spec` and returns its backend_error; fails the test when it
  /// produced an image.
  backend_error error_of(const command_spec& spec, const job& j = sample_job(),
                         const slot_context& where = {},
                         std::chrono::milliseconds within = 30s) {
    command_backend backend{spec};
    try {
      backend.generate(j, where, clock::now() + within);
    } catch (const backend_error& e) {
      return e;
    }
    ADD_FAILURE() << "the command backend returned an image";
    return backend_error(failure_kind::none, "");
  }

  /// The files left in the scratch directory.
  std::vector<std::string> scratch_files() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(scratch_))
      names.push_back(entry.path().filename().string());
    return names;
  }

  test::temp_dir dir_{"imagen-command-test"};
  fs::path fixture_ = dir_.path() / "fixture.png";
  fs::path scratch_ = dir_.path() / "scratch";
  std::string copy_fixture_ = "cp " + fixture_.string() + " \"$0\"";
};

// ---- argv template ----------------------------------------------------

TEST_F(command_backend_test, every_placeholder_is_substituted) {
  command_spec spec;
  spec.name = "sdcpp";
  spec.argv = {"sd",
               "-m",
               "{model}",
               "-p",
               "{prompt}",
               "-n",
               "{negative_prompt}",
               "-W",
               "{width}",
               "-H",
               "{height}",
               "--steps",
               "{steps}",
               "-s",
               "{seed}",
               "-o",
               "{output}",
               "--dev",
               "{device}"};
  command_backend backend{spec};
  auto argv = backend.expand(sample_job(), on_gpu(3), "/tmp/out.png");
  EXPECT_EQ(argv, (std::vector<std::string>{"sd", "-m", "/models/sd-v1-5.gguf",
                                            "-p", "an orchard in spring", "-n",
                                            "", "-W", "40", "-H", "24",
                                            "--steps", "12", "-s", "-17", "-o",
                                            "/tmp/out.png", "--dev", "3"}));
}

TEST_F(command_backend_test, placeholders_inside_an_element_and_unknown_ones) {
  command_spec spec;
  spec.argv = {"gen",       "--size={width}x{height}",
               "{unknown}", "{",
               "}{",        "{{seed}}",
               "{width",    "plain"};
  command_backend backend{spec};
  auto argv = backend.expand(sample_job(), {}, "/o.png");
  EXPECT_EQ(argv,
            (std::vector<std::string>{"gen", "--size=40x24", "{unknown}", "{",
                                      "}{", "{-17}", "{width", "plain"}));
}

TEST_F(command_backend_test, zero_fields_become_the_defaults_and_cpu) {
  command_spec spec;
  spec.argv = {"gen", "{width}", "{height}", "{steps}", "{device}", "{model}"};
  command_backend backend{spec};
  job j = sample_job();
  j.width = 0;
  j.height = 0;
  j.steps = 0;
  j.model.clear();
  EXPECT_EQ(
      backend.expand(j, {}, "/o.png"),
      (std::vector<std::string>{"gen", std::to_string(default_width),
                                std::to_string(default_height),
                                std::to_string(default_steps), "cpu", ""}));
}

TEST_F(command_backend_test, a_prompt_stays_one_literal_element) {
  command_spec spec;
  spec.argv = {"gen", "-p", "{prompt}", "-o", "{output}"};
  command_backend backend{spec};
  job j = sample_job();
  j.prompt = "a cat {output} {seed} $(id) ; rm -rf ~ \"'";
  auto argv = backend.expand(j, {}, "/o.png");
  ASSERT_EQ(argv.size(), 5u);
  EXPECT_EQ(argv[2], j.prompt);
  EXPECT_EQ(argv[4], "/o.png");
}

TEST_F(command_backend_test, an_empty_argv_is_refused_at_construction) {
  command_spec spec;
  spec.name = "empty";
  EXPECT_THROW(command_backend{spec}, std::invalid_argument);
}

// ---- success ----------------------------------------------------------

TEST_F(command_backend_test, success_returns_the_commands_png) {
  command_backend backend{shell_spec(copy_fixture_)};
  auto image = backend.generate(sample_job(), {}, clock::now() + 30s);
  EXPECT_EQ(image.png, file_bytes(fixture_));
  EXPECT_EQ(image.width, 40);
  EXPECT_EQ(image.height, 24);
  EXPECT_EQ(scratch_files(), std::vector<std::string>{})
      << "the {output} file was left behind";
}

TEST_F(command_backend_test, a_hostile_prompt_is_never_run_by_a_shell) {
  // If any shell parsed the prompt it would create "pwned", run the
  // backticks and delete "victim" (HOME points into the test directory).
  test::write_file(path("victim"), "still here");
  job j = sample_job();
  j.prompt = "$(touch " + path("pwned") + "); rm -rf ~/victim; `touch " +
             path("pwned2") + "` && echo ' \" \\";
  auto spec =
      shell_spec("printf '%s' \"$1\" > " + path("seen") + "; " + copy_fixture_,
                 {"{prompt}"});
  spec.env["HOME"] = dir_.path().string();
  command_backend backend{spec};
  backend.generate(j, {}, clock::now() + 30s);

  EXPECT_EQ(test::read_file(path("seen")), j.prompt);
  EXPECT_FALSE(fs::exists(path("pwned")));
  EXPECT_FALSE(fs::exists(path("pwned2")));
  EXPECT_EQ(test::read_file(path("victim")), "still here");
}

TEST_F(command_backend_test, a_non_ascii_prompt_arrives_intact) {
  job j = sample_job();
  j.prompt = "雪の中の狐 🦊 «ñ»";
  auto spec =
      shell_spec("printf '%s' \"$1\" > " + path("seen") + "; " + copy_fixture_,
                 {"{prompt}"});
  command_backend{spec}.generate(j, {}, clock::now() + 30s);
  EXPECT_EQ(test::read_file(path("seen")), j.prompt);
}

// ---- environment ------------------------------------------------------

TEST_F(command_backend_test, the_slots_gpu_is_cuda_visible_devices) {
  auto spec =
      shell_spec("echo \"cvd=${CUDA_VISIBLE_DEVICES-unset}\" >&2; exit 3");
  auto error = error_of(spec, sample_job(), on_gpu(2));
  EXPECT_NE(std::string{error.what()}.find("cvd=2"), std::string::npos)
      << error.what();

  // The slot's device wins over a value in the backend's env table, which
  // would put every slot on one GPU.
  spec.env["CUDA_VISIBLE_DEVICES"] = "7";
  error = error_of(spec, sample_job(), on_gpu(1));
  EXPECT_NE(std::string{error.what()}.find("cvd=1"), std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, a_cpu_slot_hides_the_workers_gpus) {
  // A worker started with GPUs visible runs CPU slots: the command of a
  // CPU slot must not pick a GPU on its own.
  ::setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
  auto error = error_of(
      shell_spec("echo \"cvd=${CUDA_VISIBLE_DEVICES-unset}.\" >&2; exit 3"));
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_NE(std::string{error.what()}.find("cvd=."), std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, a_cpu_slot_keeps_a_device_set_by_the_operator) {
  auto spec =
      shell_spec("echo \"cvd=${CUDA_VISIBLE_DEVICES-unset}.\" >&2; exit 3");
  spec.env["CUDA_VISIBLE_DEVICES"] = "5";
  auto error = error_of(spec);
  EXPECT_NE(std::string{error.what()}.find("cvd=5."), std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, env_extras_are_added_to_the_workers_environment) {
  ::setenv("UNIT_INHERITED", "from-worker", 1);
  ::setenv("UNIT_OVERRIDDEN", "old", 1);
  auto spec = shell_spec(
      "echo \"hf=$HF_HOME inherited=$UNIT_INHERITED "
      "overridden=$UNIT_OVERRIDDEN\" >&2; exit 3");
  spec.env["HF_HOME"] = "/srv/cache dir";
  spec.env["UNIT_OVERRIDDEN"] = "new";
  auto error = error_of(spec);
  ::unsetenv("UNIT_INHERITED");
  ::unsetenv("UNIT_OVERRIDDEN");
  EXPECT_NE(std::string{error.what()}.find(
                "hf=/srv/cache dir inherited=from-worker overridden=new"),
            std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, the_database_settings_are_not_passed_on) {
  // The worker's URL carries the database password; libpq's variables
  // may too. A generator that logs its environment must not see them.
  ::setenv("IMAGEN_DATABASE_URL", "postgresql://u:s3cr3t@db/x", 1);
  ::setenv("PGPASSWORD", "s3cr3t", 1);
  auto spec = shell_spec(
      "echo \"url=${IMAGEN_DATABASE_URL-unset} "
      "pw=${PGPASSWORD-unset} set=${PGAPPNAME-unset}\" >&2; exit 3");
  // ... unless the operator sets one for the backend on purpose.
  spec.env["PGAPPNAME"] = "generator";
  auto error = error_of(spec);
  ::unsetenv("IMAGEN_DATABASE_URL");
  ::unsetenv("PGPASSWORD");
  EXPECT_NE(std::string{error.what()}.find("url=unset pw=unset set=generator"),
            std::string::npos)
      << error.what();
}

// ---- failures ---------------------------------------------------------

TEST_F(command_backend_test, a_non_zero_exit_names_the_status_and_stderr) {
  auto error = error_of(
      shell_spec("echo 'loading model'; echo 'CUDA out of memory' >&2; "
                 "exit 7"));
  EXPECT_EQ(error.kind(), failure_kind::backend);
  std::string what = error.what();
  EXPECT_NE(what.find("command backend fake"), std::string::npos) << what;
  EXPECT_NE(what.find("status 7"), std::string::npos) << what;
  EXPECT_NE(what.find("CUDA out of memory"), std::string::npos) << what;
  EXPECT_TRUE(is_retryable(error.kind()));
  EXPECT_EQ(scratch_files(), std::vector<std::string>{});
}

TEST_F(command_backend_test, a_command_killed_by_a_signal_names_it) {
  auto error = error_of(shell_spec("echo 'segfault ahead' >&2; kill -SEGV $$"));
  EXPECT_EQ(error.kind(), failure_kind::backend);
  std::string what = error.what();
  EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;
  EXPECT_NE(what.find("segfault ahead"), std::string::npos) << what;
}

TEST_F(command_backend_test, a_missing_executable_is_a_backend_error) {
  command_spec spec = shell_spec("");
  spec.argv = {"/nonexistent/imagen-generator", "{output}"};
  auto error = error_of(spec);
  EXPECT_EQ(error.kind(), failure_kind::backend);
  EXPECT_NE(std::string{error.what()}.find("/nonexistent/imagen-generator"),
            std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, a_timeout_kills_the_group_and_says_timeout) {
  auto spec = shell_spec("sleep 1000 & echo $! > " + path("grandchild") +
                         "; echo 'still sampling' >&2; wait");
  auto error = error_of(spec, sample_job(), {}, 2s);
  EXPECT_EQ(error.kind(), failure_kind::timeout);
  std::string what = error.what();
  EXPECT_NE(what.find("timed out after"), std::string::npos) << what;
  EXPECT_NE(what.find("still sampling"), std::string::npos) << what;

  ASSERT_TRUE(fs::exists(path("grandchild")));
  pid_t grandchild =
      static_cast<pid_t>(std::stol(test::read_file(path("grandchild"))));
  EXPECT_TRUE(
      test::wait_until([&] { return test::is_dead(grandchild); }, 10000ms))
      << "grandchild " << grandchild << " outlived the timeout";
  EXPECT_EQ(scratch_files(), std::vector<std::string>{});
}

TEST_F(command_backend_test, the_backends_own_timeout_is_shorter_and_named) {
  auto spec = shell_spec("sleep 1000");
  spec.timeout = 1500ms;
  command_backend backend{spec};
  ASSERT_TRUE(backend.timeout());
  EXPECT_EQ(*backend.timeout(), 1500ms);
  auto error = error_of(spec, sample_job(), {}, 60s);
  EXPECT_EQ(error.kind(), failure_kind::timeout);
  EXPECT_NE(std::string{error.what()}.find("timed out after 1500ms"),
            std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, no_own_timeout_means_the_workers) {
  EXPECT_FALSE(command_backend{shell_spec("true")}.timeout());
}

TEST_F(command_backend_test, output_that_is_not_a_png_is_refused) {
  auto error = error_of(shell_spec("echo 'not an image' > \"$0\""));
  EXPECT_EQ(error.kind(), failure_kind::backend);
  EXPECT_NE(std::string{error.what()}.find("output is not a PNG"),
            std::string::npos)
      << error.what();
  EXPECT_EQ(scratch_files(), std::vector<std::string>{});
}

TEST_F(command_backend_test, a_truncated_png_is_refused) {
  auto error =
      error_of(shell_spec("head -c 60 " + fixture_.string() + " > \"$0\""));
  EXPECT_NE(std::string{error.what()}.find("output is not a PNG"),
            std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, exit_0_without_an_output_file_is_refused) {
  auto error = error_of(shell_spec("echo 'forgot to save'"));
  EXPECT_EQ(error.kind(), failure_kind::backend);
  EXPECT_NE(std::string{error.what()}.find("output is not a PNG"),
            std::string::npos)
      << error.what();
}

TEST_F(command_backend_test, megabytes_of_stderr_leave_a_bounded_message) {
  auto error =
      error_of(shell_spec("head -c 6000000 /dev/zero | tr '\\000' e >&2; "
                          "echo; echo 'the real reason' >&2; exit 9"));
  std::string what = error.what();
  EXPECT_NE(what.find("status 9"), std::string::npos) << what.substr(0, 200);
  EXPECT_NE(what.find("the real reason"), std::string::npos);
  EXPECT_LT(what.size(), 4096u + 200u);
}

TEST_F(command_backend_test, the_stderr_tail_is_valid_utf8_text) {
  // Raw bytes a crashing program might print: a lone continuation byte,
  // an encoded surrogate, an overlong slash, a code point above U+10FFFF,
  // a NUL and escape sequences. The message goes into a PostgreSQL text
  // column, which refuses all of those bytes that are not valid UTF-8.
  auto error = error_of(shell_spec(
      "printf 'a\\200b\\355\\240\\200c\\300\\257d\\364\\220\\200\\200e"
      "\\000f\\033[31mg\\n' >&2; printf 'ok \\303\\251 \\360\\237\\246\\212' "
      ">&2; exit 1"));
  std::string what = error.what();
  EXPECT_TRUE(utf8_length(what)) << what;
  EXPECT_EQ(what.find('\0'), std::string::npos);
  EXPECT_EQ(what.find('\x1b'), std::string::npos);
  // Valid characters survive.
  EXPECT_NE(what.find("ok \xc3\xa9 \xf0\x9f\xa6\x8a"), std::string::npos)
      << what;
}

TEST_F(command_backend_test, the_cancel_flag_stops_the_command) {
  std::atomic<bool> cancel{false};
  slot_context where;
  where.cancel = &cancel;
  auto spec = shell_spec("touch " + path("ready") + "; sleep 1000");
  std::thread canceller([&] {
    test::wait_until([&] { return fs::exists(path("ready")); }, 20000ms);
    cancel = true;
  });
  auto error = error_of(spec, sample_job(), where);
  canceller.join();
  EXPECT_EQ(error.kind(), failure_kind::cancelled);
  EXPECT_NE(std::string{error.what()}.find("cancelled"), std::string::npos)
      << error.what();
  EXPECT_EQ(scratch_files(), std::vector<std::string>{});
}

TEST_F(command_backend_test, an_uncreatable_scratch_dir_is_a_backend_error) {
  test::write_file(path("file"), "x");
  auto spec = shell_spec(copy_fixture_);
  spec.scratch_dir = path("file") + "/scratch";
  auto error = error_of(spec);
  EXPECT_EQ(error.kind(), failure_kind::backend);
  EXPECT_NE(std::string{error.what()}.find(spec.scratch_dir), std::string::npos)
      << error.what();
}

}  // namespace
}  // namespace imagen
