// run_process: exit status, signals, the deadline and the cancel flag end
// the child and everything it started; output is read without blocking
// the child and only its tail is kept; the child starts clean (stdin,
// environment, descriptors, signal mask) whatever the worker holds.
#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/subprocess.hpp"
#include "tests/support/process.hpp"
#include "tests/unit/process_state.hpp"

namespace imagen {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using ending = process_result::ending;

/// A deadline no test here should reach unless the child hangs.
constexpr auto generous = 30s;

process_request shell(const std::string& script,
                      std::chrono::milliseconds within = generous) {
  process_request request;
  request.argv = {"/bin/sh", "-c", script};
  request.env = {"PATH=/usr/bin:/bin"};
  request.deadline = clock::now() + within;
  return request;
}

pid_t read_pid(const fs::path& file) {
  return static_cast<pid_t>(std::stol(test::read_file(file)));
}

class subprocess_test : public ::testing::Test {
 protected:
  test::temp_dir dir_{"imagen-subprocess-test"};

  std::string path(const std::string& name) const {
    return (dir_.path() / name).string();
  }

  /// Asserts that the process whose pid the child wrote to `file` ends;
  /// the kill is sent before run_process returns, delivery may lag.
  void expect_killed(const std::string& file) {
    ASSERT_TRUE(fs::exists(file)) << "the child never started " << file;
    pid_t pid = read_pid(file);
    EXPECT_TRUE(test::wait_until([&] { return test::is_dead(pid); }, 10000ms))
        << "process " << pid << " outlived run_process";
  }
};

// ---- how it ended -------------------------------------------------------

TEST_F(subprocess_test, a_clean_exit_reports_status_0_and_the_output) {
  auto result = run_process(shell("echo to stdout; echo to stderr >&2"));
  EXPECT_EQ(result.end, ending::exited);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output_tail, "to stdout\nto stderr\n");
  EXPECT_EQ(result.output_bytes, 20u);
}

TEST_F(subprocess_test, a_non_zero_exit_status_is_reported) {
  auto result = run_process(shell("echo failing >&2; exit 42"));
  EXPECT_EQ(result.end, ending::exited);
  EXPECT_EQ(result.status, 42);
  EXPECT_EQ(result.output_tail, "failing\n");
}

TEST_F(subprocess_test, death_by_signal_is_reported_with_the_signal) {
  auto result = run_process(shell("echo crashing; kill -SEGV $$; sleep 5"));
  EXPECT_EQ(result.end, ending::signaled);
  EXPECT_EQ(result.signal, SIGSEGV);
  EXPECT_EQ(result.output_tail, "crashing\n");

  result = run_process(shell("kill -KILL $$"));
  EXPECT_EQ(result.end, ending::signaled);
  EXPECT_EQ(result.signal, SIGKILL);
}

TEST_F(subprocess_test, signal_names_are_spelled_like_kill_l) {
  EXPECT_EQ(signal_name(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(signal_name(SIGKILL), "SIGKILL");
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(77), "signal 77");
}

// ---- starting -----------------------------------------------------------

TEST_F(subprocess_test, a_missing_executable_is_a_spawn_error_naming_it) {
  process_request request = shell("");
  request.argv = {"imagen-no-such-generator-here", "--help"};
  try {
    run_process(request);
    FAIL() << "run_process started a missing executable";
  } catch (const spawn_error& e) {
    EXPECT_NE(std::string{e.what()}.find("imagen-no-such-generator-here"),
              std::string::npos)
        << e.what();
  }
}

// An executable file without "#!" is run by /bin/sh, as execvp does,
// whether it is named by path or found in the worker's PATH.
TEST_F(subprocess_test, a_script_without_an_interpreter_line_runs_in_sh) {
  const auto script = path("no-shebang");
  std::ofstream(script) << "echo \"hi $1\"\nexit 5\n";
  fs::permissions(script, fs::perms::owner_all);

  process_request by_path = shell("");
  by_path.argv = {script, "there"};
  auto result = run_process(by_path);
  EXPECT_EQ(result.end, ending::exited);
  EXPECT_EQ(result.status, 5);
  EXPECT_EQ(result.output_tail, "hi there\n");

  const char* saved = std::getenv("PATH");
  std::string old_path = saved ? saved : "/usr/bin:/bin";
  ::setenv("PATH", (dir_.path().string() + ":" + old_path).c_str(), 1);
  process_request by_name = shell("");
  by_name.argv = {"no-shebang", "again"};
  auto found = run_process(by_name);
  ::setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(found.status, 5);
  EXPECT_EQ(found.output_tail, "hi again\n");
}

// The guard kills the group only when the worker is gone: a SIGUSR1 from
// the command to its group (or to its parent) is no such news.
TEST_F(subprocess_test, a_sigusr1_within_the_group_does_not_kill_it) {
  auto to_group =
      run_process(shell("trap '' USR1; kill -USR1 0; sleep 0.3; exit 3"));
  EXPECT_EQ(to_group.end, ending::exited);
  EXPECT_EQ(to_group.status, 3);

  auto to_parent = run_process(shell("kill -USR1 $PPID; sleep 0.3; exit 4"));
  EXPECT_EQ(to_parent.end, ending::exited);
  EXPECT_EQ(to_parent.status, 4);
}

TEST_F(subprocess_test, an_empty_argv_is_a_spawn_error) {
  process_request request = shell("");
  request.argv.clear();
  EXPECT_THROW(run_process(request), spawn_error);
  request.argv = {""};
  EXPECT_THROW(run_process(request), spawn_error);
}

TEST_F(subprocess_test, argv_elements_reach_the_child_verbatim) {
  process_request request = shell("");
  const std::string tricky = "$(touch " + path("pwned") + "); `id` *  \"'\\";
  request.argv = {"/bin/sh", "-c",       "printf '[%s]' \"$@\"", "sh", tricky,
                  "",        "two words"};
  auto result = run_process(request);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.output_tail, "[" + tricky + "][][two words]");
  EXPECT_FALSE(fs::exists(path("pwned")));
}

TEST_F(subprocess_test, the_environment_is_exactly_the_one_given) {
  process_request request = shell(
      "echo \"extra=$IMAGEN_UNIT_EXTRA home=${HOME-unset} "
      "path=$PATH\"");
  request.env.push_back("IMAGEN_UNIT_EXTRA=a b=c");
  auto result = run_process(request);
  EXPECT_EQ(result.output_tail, "extra=a b=c home=unset path=/usr/bin:/bin\n");
}

TEST_F(subprocess_test, stdin_is_empty) {
  auto result = run_process(shell("cat; echo \"read $?\""));
  EXPECT_EQ(result.output_tail, "read 0\n");
}

// The command runs in a new process group, led by its guard (its
// parent), not in the worker's.
TEST_F(subprocess_test, the_command_runs_in_its_own_process_group) {
  auto result =
      run_process(shell("cut -d' ' -f4,5 /proc/$$/stat; cat /proc/$PPID/comm"));
  ASSERT_EQ(result.status, 0) << result.output_tail;
  auto lines = test::lines_of(result.output_tail);
  ASSERT_EQ(lines.size(), 2u) << result.output_tail;
  auto space = lines[0].find(' ');
  ASSERT_NE(space, std::string::npos) << result.output_tail;
  long parent = std::stol(lines[0].substr(0, space));
  long group = std::stol(lines[0].substr(space + 1));
  EXPECT_EQ(group, parent);
  EXPECT_NE(parent, static_cast<long>(::getpid()));
  EXPECT_NE(group, static_cast<long>(::getpgrp()));
  EXPECT_EQ(lines[1], "imagen-guard");
}

TEST_F(subprocess_test, descriptors_of_the_worker_do_not_leak_into_it) {
  // Opened without O_CLOEXEC, like a careless library would.
  int fd = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  int high = ::fcntl(fd, F_DUPFD, 100);
  ::close(fd);
  ASSERT_GE(high, 100);
  auto result =
      run_process(shell("if [ -e /proc/self/fd/" + std::to_string(high) +
                        " ]; then echo leaked; else echo closed; fi"));
  ::close(high);
  EXPECT_EQ(result.output_tail, "closed\n");
}

TEST_F(subprocess_test, signals_blocked_or_ignored_by_the_worker_are_reset) {
  // The worker blocks SIGTERM for its own signal handling and may ignore
  // SIGPIPE; a generator must still die from either.
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &previous), 0);
  auto old_pipe = std::signal(SIGPIPE, SIG_IGN);

  auto term = run_process(shell("kill -TERM $$; sleep 5"));
  auto pipe = run_process(shell("kill -PIPE $$; sleep 5"));

  std::signal(SIGPIPE, old_pipe);
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  EXPECT_EQ(term.end, ending::signaled);
  EXPECT_EQ(term.signal, SIGTERM);
  EXPECT_EQ(pipe.end, ending::signaled);
  EXPECT_EQ(pipe.signal, SIGPIPE);
}

// ---- deadline -----------------------------------------------------------

TEST_F(subprocess_test, the_deadline_kills_the_child_and_its_grandchildren) {
  auto request =
      shell("sleep 1000 & echo $! > " + path("grandchild") + "; echo $$ > " +
                path("child") + "; echo started; wait",
            2s);
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::timed_out);
  EXPECT_EQ(result.output_tail, "started\n");
  expect_killed(path("child"));
  expect_killed(path("grandchild"));
}

TEST_F(subprocess_test, a_group_that_ignores_sigterm_gets_sigkill) {
  auto request = shell("trap '' TERM; sleep 1000 & echo $! > " +
                           path("grandchild") + "; while :; do sleep 1; done",
                       2s);
  request.kill_grace = 200ms;
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::timed_out);
  expect_killed(path("grandchild"));
}

TEST_F(subprocess_test, a_deadline_already_passed_still_ends_cleanly) {
  // The pid file appears whole or not at all: the child may be killed
  // before it gets to write it.
  auto request = shell("echo $$ > " + path("tmp") + "; mv " + path("tmp") +
                           " " + path("child") + "; sleep 1000",
                       0ms);
  request.deadline = clock::now() - 1s;
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::timed_out);
  if (fs::exists(path("child")))
    expect_killed(path("child"));
}

TEST_F(subprocess_test, a_daemon_left_by_a_successful_command_is_killed) {
  // The command exits 0 but leaves a background process in its group that
  // still holds the output pipe.
  auto result = run_process(
      shell("sleep 1000 & echo $! > " + path("daemon") + "; exit 0"));
  EXPECT_EQ(result.end, ending::exited);
  EXPECT_EQ(result.status, 0);
  expect_killed(path("daemon"));
}

TEST_F(subprocess_test, the_command_and_its_children_die_with_the_worker) {
  // A stand-in worker, forked from this test, runs a command that starts
  // a child of its own, and is then killed with SIGKILL: nothing of it
  // can kill the command's group.
  pid_t worker = ::fork();
  ASSERT_GE(worker, 0);
  if (worker == 0) {
    run_process(shell("sleep 1000 & echo $! > " + path("grandchild") +
                      "; echo $$ > " + path("tmp") + "; mv " + path("tmp") +
                      " " + path("child") + "; wait"));
    ::_exit(0);
  }
  bool started =
      test::wait_until([&] { return fs::exists(path("child")); }, 10000ms);
  ::kill(worker, SIGKILL);
  int status = 0;
  ::waitpid(worker, &status, 0);
  ASSERT_TRUE(started) << "the command never started";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  expect_killed(path("child"));
  expect_killed(path("grandchild"));
}

// A worker started with its standard descriptors closed opens its pipes
// as 0, 1 or 2; the command must still get them as its output (dup2 of a
// descriptor onto itself would leave it close-on-exec).
TEST_F(subprocess_test, a_worker_without_standard_descriptors_gets_output) {
  pid_t worker = ::fork();
  ASSERT_GE(worker, 0);
  if (worker == 0) {
    ::close(STDIN_FILENO);
    ::close(STDOUT_FILENO);
    auto result = run_process(shell("echo out-line; echo err-line >&2"));
    std::ofstream(path("tail")) << result.output_tail;
    ::_exit(result.status == 0 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(worker, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(test::read_file(path("tail")), "out-line\nerr-line\n");
}

// ---- cancel -------------------------------------------------------------

TEST_F(subprocess_test, the_cancel_flag_stops_the_group) {
  std::atomic<bool> cancel{false};
  auto request = shell("sleep 1000 & echo $! > " + path("grandchild") +
                       "; touch " + path("ready") + "; wait");
  request.cancel = &cancel;
  request.kill_grace = 200ms;
  std::thread canceller([&] {
    test::wait_until([&] { return fs::exists(path("ready")); }, 20000ms);
    cancel = true;
  });
  auto result = run_process(request);
  canceller.join();
  EXPECT_EQ(result.end, ending::cancelled);
  expect_killed(path("grandchild"));
}

TEST_F(subprocess_test, a_cancel_flag_set_before_the_start_stops_at_once) {
  std::atomic<bool> cancel{true};
  auto request = shell("sleep 1000");
  request.cancel = &cancel;
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::cancelled);
}

// ---- output -------------------------------------------------------------

TEST_F(subprocess_test, megabytes_of_output_keep_only_a_bounded_tail) {
  auto request = shell(
      "head -c 8000000 /dev/zero | tr '\\000' x >&2; echo; echo LAST LINE; "
      "exit 3");
  request.tail_limit = 1000;
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::exited);
  EXPECT_EQ(result.status, 3);
  EXPECT_EQ(result.output_bytes, 8000000u + 1 + 10);
  ASSERT_EQ(result.output_tail.size(), 1000u);
  EXPECT_EQ(result.output_tail.substr(1000 - 11), "\nLAST LINE\n");
  EXPECT_EQ(result.output_tail.substr(0, 989), std::string(989, 'x'));
}

TEST_F(subprocess_test, endless_output_does_not_keep_the_deadline_away) {
  auto request = shell("yes 'a line of noise on stderr' >&2", 500ms);
  request.kill_grace = 200ms;
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::timed_out);
  EXPECT_LE(result.output_tail.size(), request.tail_limit);
  EXPECT_GT(result.output_bytes, result.output_tail.size());
}

TEST_F(subprocess_test, several_flooding_writers_do_not_keep_it_away) {
  // More writers than the reader can keep up with: the pipe never runs
  // dry, so reading "until it is empty" would never end.
  auto request = shell(
      "cat /dev/zero & cat /dev/zero >&2 & cat /dev/zero & "
      "cat /dev/zero >&2 & wait",
      500ms);
  request.kill_grace = 200ms;
  auto result = run_process(request);
  EXPECT_EQ(result.end, ending::timed_out);
  EXPECT_LE(result.output_tail.size(), request.tail_limit);
}

TEST_F(subprocess_test, endless_output_does_not_keep_cancel_away) {
  std::atomic<bool> cancel{false};
  auto request = shell("touch " + path("ready") + "; yes noise");
  request.cancel = &cancel;
  request.kill_grace = 200ms;
  std::thread canceller([&] {
    test::wait_until([&] { return fs::exists(path("ready")); }, 20000ms);
    cancel = true;
  });
  auto result = run_process(request);
  canceller.join();
  EXPECT_EQ(result.end, ending::cancelled);
}

TEST_F(subprocess_test, a_child_that_closes_its_output_is_still_waited_for) {
  auto result = run_process(shell("exec >&- 2>&-; sleep 0.2; echo $$ > " +
                                  path("child") + "; exit 5"));
  EXPECT_EQ(result.end, ending::exited);
  EXPECT_EQ(result.status, 5);
  EXPECT_TRUE(fs::exists(path("child")));
}

}  // namespace
}  // namespace imagen
