// Test helpers for running the imagen-worker binary as a child process:
// start it with arguments and extra environment, capture what it prints,
// signal it, wait for it with a deadline, and poll conditions instead of
// sleeping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace imagen::test {

using std::chrono::milliseconds;

/// A directory under /tmp, removed with everything in it on destruction.
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "imagen-test");
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Polls `condition` every `poll` until it holds or `timeout` has passed;
/// returns whether it held. The condition is checked once more at the end.
bool wait_until(const std::function<bool()>& condition, milliseconds timeout,
                milliseconds poll = milliseconds(20));

/// Environment changes for a child: a value sets the variable, nullopt
/// removes it.
using env_changes = std::map<std::string, std::optional<std::string>>;

/// One child process in its own process group. Its stdout and stderr go to
/// files in a private temporary directory. The destructor kills the whole
/// group with SIGKILL and reaps the child if it is still running.
///
/// The child inherits the test's environment except every IMAGEN_*
/// variable other than IMAGEN_TEST_* (the worker refuses unknown IMAGEN_*
/// names, and a developer's shell must not change a test's outcome); then
/// `env` is applied.
class process {
 public:
  process(const std::string& executable, const std::vector<std::string>& args,
          const env_changes& env = {});
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const { return pid_; }

  /// Waits up to `timeout` for the child to end. Returns its exit status,
  /// or 128 + the signal number when a signal ended it (the shell's
  /// convention); nullopt when it is still running at the deadline. Once
  /// the child has ended every later call returns the same value at once.
  std::optional<int> wait_for_exit(milliseconds timeout);

  /// True while the child has not ended (reaps it when it has).
  bool running();

  /// Sends `sig` to the child itself (not to its group).
  void signal(int sig);

  /// Sends SIGKILL to the child's whole process group.
  void kill_group();

  /// Everything the child wrote so far: stderr, then stdout.
  std::string output() const;
  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  temp_dir dir_;
};

/// Starts the imagen-worker binary under test with `args`.
std::unique_ptr<process> start_worker(const std::vector<std::string>& args,
                                      const env_changes& env = {});

/// Runs the imagen-worker binary to completion (at most `timeout`, then it
/// is killed) and returns its exit status and output.
struct finished {
  std::optional<int> status;  // nullopt: it did not end within the timeout
  std::string out;            // stdout only
  std::string all;            // stderr, then stdout
};
finished run_worker(const std::vector<std::string>& args,
                    const env_changes& env = {},
                    milliseconds timeout = milliseconds(30000));

/// The whole content of a file; throws std::runtime_error naming the path
/// when it cannot be read.
std::string read_file(const std::filesystem::path& path);

/// Writes `text` to `path`, replacing it; throws when that fails.
void write_file(const std::filesystem::path& path, const std::string& text);

/// Pids of live processes whose command line contains `needle` (reads
/// /proc); used to prove that no fake backend outlived its job. Zombies
/// count as gone.
std::vector<pid_t> processes_matching(const std::string& needle);

/// Splits `text` into its non-empty lines.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace imagen::test
