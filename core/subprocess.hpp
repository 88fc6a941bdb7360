// Runs one child process in its own process group with a deadline, a
// cancel flag and a bounded tail of its output. Used by command_backend.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace imagen {

/// The process could not be started at all (missing executable, no
/// permission, out of processes).
class spawn_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct process_request {
  std::vector<std::string> argv;  // argv[0] as find_program finds it
  std::vector<std::string> env;   // complete environment, "KEY=value"
  std::chrono::steady_clock::time_point deadline;
  const std::atomic<bool>* cancel = nullptr;
  /// How much of the combined stdout and stderr is kept (the end of it).
  std::size_t tail_limit = 4096;
  /// Between SIGTERM and SIGKILL to the group on timeout or cancel.
  std::chrono::milliseconds kill_grace{1000};
};

struct process_result {
  enum class ending { exited, signaled, timed_out, cancelled };
  ending end = ending::exited;
  int status = 0;  // exit status when `exited`
  int signal = 0;  // signal number when `signaled`
  std::string output_tail;
  /// Bytes the process wrote in all, kept or not.
  std::size_t output_bytes = 0;
};

/// Starts `request.argv` with stdin from /dev/null and stdout and stderr
/// into one pipe, in a new process group, and waits for it. On timeout or
/// cancel the whole group gets SIGTERM, then SIGKILL after the grace.
/// Whatever the ending, no process of the group is left running and the
/// child is reaped. Throws spawn_error when the process cannot start.
process_result run_process(const process_request& request);

/// The file `program` (an argv[0]) starts from, found the way execvp
/// finds it: a name with '/' as it is; otherwise the first executable
/// regular file of that name in `path_variable` (a PATH value, ':'
/// between directories, an empty entry for the working directory), or in
/// default_search_path() when there is no PATH. Nothing when none is.
std::optional<std::string> find_program(
    const std::string& program,
    const std::optional<std::string>& path_variable);

/// The search path execvp uses when PATH is unset (confstr(_CS_PATH)).
std::string default_search_path();

/// "SIGSEGV" for SIGSEGV; "signal 77" when the number has no name.
std::string signal_name(int signal);

}  // namespace imagen
