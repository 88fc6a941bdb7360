#include "core/subprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace imagen {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// How often the cancel flag is looked at while the child runs.
constexpr milliseconds cancel_check{50};

/// Reads of 64 KiB between two looks at the clock and the cancel flag.
constexpr int max_reads_per_wakeup = 16;

/// Owns one file descriptor.
class descriptor {
 public:
  explicit descriptor(int fd = -1) : fd_(fd) {}
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  ~descriptor() { reset(); }

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

/// Keeps the last `limit` bytes of everything appended, in bounded memory.
class tail_buffer {
 public:
  explicit tail_buffer(std::size_t limit) : limit_(limit) {}

  void append(const char* data, std::size_t n) {
    total_ += n;
    if (n >= limit_) {
      text_.assign(data + n - limit_, limit_);
      return;
    }
    text_.append(data, n);
    if (text_.size() > limit_)
      text_.erase(0, text_.size() - limit_);
  }

  std::string take() { return std::move(text_); }
  std::size_t total() const { return total_; }

 private:
  std::size_t limit_;
  std::size_t total_ = 0;
  std::string text_;
};

/// The child, its pipe and its pidfd while it runs.
class child_process {
 public:
  child_process(pid_t pid, int output, std::size_t tail_limit)
      : pid_(pid), output_(output), tail_(tail_limit) {
    // A pidfd wakes poll() the moment the child exits; without one (old
    // kernel, seccomp) the loop falls back to checking on each tick.
    long fd = ::syscall(SYS_pidfd_open, pid, 0);
    exit_fd_.reset(fd >= 0 ? static_cast<int>(fd) : -1);
  }

  /// True once the child has exited; it stays a zombie, not reaped, so
  /// that its pid (the group id) cannot be reused while we signal the
  /// group.
  bool exited() {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info,
                 WEXITED | WNOHANG | WNOWAIT) != 0)
      return errno == ECHILD;
    return info.si_pid == pid_;
  }

  /// Reads output and waits for the exit, at most until `until`.
  void pump(clock::time_point until) {
    while (!exited()) {
      auto now = clock::now();
      if (now >= until)
        return;
      wait_for_events(std::min<clock::duration>(until - now, cancel_check),
                      true);
    }
  }

  /// Reads what is left once every writer is gone or after `limit`.
  void drain(milliseconds limit) {
    auto until = clock::now() + limit;
    while (output_.get() >= 0 && clock::now() < until)
      wait_for_events(cancel_check, false);
  }

  void signal_group(int signal) { ::kill(-pid_, signal); }

  /// Reaps the child and returns its wait status.
  int reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  }

  std::string take_tail() { return tail_.take(); }
  std::size_t output_bytes() const { return tail_.total(); }

 private:
  void wait_for_events(clock::duration limit, bool watch_exit) {
    pollfd fds[2] = {{output_.get(), POLLIN, 0},
                     {watch_exit ? exit_fd_.get() : -1, POLLIN, 0}};
    auto ms = std::chrono::duration_cast<milliseconds>(limit).count();
    int ready = ::poll(fds, 2, static_cast<int>(std::max<long>(ms, 1)));
    if (ready <= 0 || output_.get() < 0)
      return;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
      read_output();
  }

  void read_output() {
    // Empties the pipe so that a flooding child never blocks on a full
    // one; only the tail is kept. The number of reads is bounded: writers that
    // refill the pipe as fast as it is read (several processes of the group on
    // other cores) must not keep the caller from looking at the deadline and
    // the cancel flag. poll() reports the rest at once.
    char buffer[65536];
    for (int reads = 0; reads < max_reads_per_wakeup; ++reads) {
      ssize_t n = ::read(output_.get(), buffer, sizeof buffer);
      if (n > 0) {
        tail_.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n == 0)
        output_.reset();
      return;
    }
  }

  pid_t pid_;
  descriptor output_;
  descriptor exit_fd_;
  tail_buffer tail_;
};

std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (const auto& s : strings)
    result.push_back(const_cast<char*>(s.c_str()));
  result.push_back(nullptr);
  return result;
}

/// A close-on-exec pipe into `reader` and `writer`; throws spawn_error.
void open_pipe(descriptor& reader, descriptor& writer) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw spawn_error(std::string{"cannot create a pipe: "} +
                      std::strerror(errno));
  reader.reset(fds[0]);
  writer.reset(fds[1]);
}

/// Signals whose disposition the worker may have changed; the command
/// gets the default for each (a handler is reset by exec anyway, an
/// ignored signal would stay ignored).
constexpr int reset_signals[] = {SIGTERM, SIGINT,  SIGHUP,  SIGPIPE,
                                 SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};

/// What the guard gets when the thread that started it, the slot's
/// thread, ends: when the worker dies, even by kill -9.
constexpr int worker_gone = SIGUSR1;

/// The guard's descriptors: stdin, stdout and stderr for the command,
/// then the report pipe; nothing else stays open in it.
constexpr int guard_report = 3;

/// RAII for the posix_spawn attribute and file action objects.
struct spawn_setup {
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_t actions;

  spawn_setup() {
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_init(&actions);
  }
  ~spawn_setup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;
};

/// Renumbers `fd` above the guard's four (0 to 3) when it is one of
/// them, so that moving the guard's descriptors into place cannot
/// overwrite one with another.
void above_standard(descriptor& fd) {
  if (fd.get() > guard_report)
    return;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, guard_report + 1);
  if (moved < 0)
    throw spawn_error(std::string{"cannot move a descriptor: "} +
                      std::strerror(errno));
  fd.reset(moved);
}

/// In the guard: sends `error`, why the command cannot start, through
/// the report pipe `report` and ends.
[[noreturn]] void report_errno(int report, int error) {
  [[maybe_unused]] auto n = ::write(report, &error, sizeof error);
  ::_exit(127);
}

/// In the guard: closes every descriptor above the report pipe.
void close_the_rest() {
  if (::close_range(guard_report + 1, ~0U, 0) == 0)
    return;
  // Kernels before 5.9 have no close_range.
  rlimit limit{};
  rlim_t last = 65536;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < last)
    last = limit.rlim_cur;
  for (rlim_t fd = guard_report + 1; fd < last; ++fd)
    ::close(static_cast<int>(fd));
}

/// In the guard: ends the way `status` says the command ended, so that
/// the worker reads the command's exit status or signal.
[[noreturn]] void end_like(int status) {
  if (WIFEXITED(status))
    ::_exit(WEXITSTATUS(status));
  int signal = WTERMSIG(status);
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);  // the guard's image is the worker's
  struct sigaction standard {};
  standard.sa_handler = SIG_DFL;
  ::sigaction(signal, &standard, nullptr);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, signal);
  ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
  ::kill(::getpid(), signal);
  ::_exit(128 + signal);
}

/// The forked child, a small guard between the worker and the command:
/// it leads the command's process group, starts the command, and ends
/// the way the command ends. When the worker dies, even by kill -9, the
/// kernel tells the guard, which kills the whole group: the command and
/// everything it started, rather than leaving them to hold a GPU for
/// nobody. Up to its end only async-signal-safe calls: it is a copy of a
/// process with other threads. Everything it needs was made before the
/// fork. Never returns.
[[noreturn]] void guard_command(const spawn_setup& setup, const char* program,
                                char* const* argv, char* const* script_argv,
                                char* const* envp, int null_input,
                                int output_writer, int report, pid_t worker) {
  // Own process group (pgid = pid), so that a timeout kills everything
  // the command started.
  if (::setpgid(0, 0) != 0)
    report_errno(report, errno);
  // All three are numbered above 3 (above_standard): none overwrites
  // another. The report pipe keeps close-on-exec from its dup.
  if (::dup2(null_input, STDIN_FILENO) < 0 ||
      ::dup2(output_writer, STDOUT_FILENO) < 0 ||
      ::dup2(output_writer, STDERR_FILENO) < 0 ||
      ::dup3(report, guard_report, O_CLOEXEC) < 0)
    report_errno(report, errno);
  // The worker's other descriptors (database sockets above all) must not
  // stay open while the command runs.
  close_the_rest();

  // Every signal stays blocked, as spawn left them: the group's SIGTERM
  // on a timeout is for the command, and the guard waits for the
  // command to end (SIGKILL still ends it). It takes only these two.
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  sigaddset(&waited, worker_gone);
  if (::prctl(PR_SET_PDEATHSIG, worker_gone) != 0)
    report_errno(guard_report, errno);
  // Its command line is the worker's; `ps -o comm`, top and pkill -x
  // tell it apart by this name.
  ::prctl(PR_SET_NAME, "imagen-guard");
  if (::getppid() != worker)
    report_errno(guard_report, ESRCH);  // the worker died before prctl

  // posix_spawn, unlike fork, runs no fork handlers and is safe here.
  // An executable file the kernel cannot start (a script without "#!")
  // runs in /bin/sh, as execvp does it.
  pid_t command = 0;
  int error = ::posix_spawn(&command, program, &setup.actions,
                            &setup.attributes, argv, envp);
  if (error == ENOEXEC)
    error = ::posix_spawn(&command, "/bin/sh", &setup.actions,
                          &setup.attributes, script_argv, envp);
  if (error != 0)
    report_errno(guard_report, error);
  ::close(guard_report);  // the worker reads the end of the pipe: started

  for (;;) {
    siginfo_t info{};
    int signal = ::sigwaitinfo(&waited, &info);
    // The command, or anyone, may send SIGUSR1 to the group: only a new
    // parent (the worker's death made the guard an orphan) counts.
    if (signal == worker_gone && ::getppid() != worker) {
      ::kill(0, SIGKILL);  // the whole group, the guard last
      ::_exit(128 + SIGKILL);
    }
    if (signal != SIGCHLD)
      continue;  // EINTR
    int status = 0;
    pid_t ended = ::waitpid(command, &status, WNOHANG);
    if (ended == command)
      end_like(status);
  }
}

/// Starts the command through a guard process (guard_command): fork,
/// then posix_spawn in the guard. `output_writer` is numbered above 3
/// (above_standard). Throws spawn_error with the reason when the command
/// cannot start. The pid returned is the guard's, which leads the group
/// and ends as the command does.
pid_t spawn(const process_request& request, int output_writer) {
  // Everything the guard uses is made before fork: after it, in a
  // process with other threads, the guard may not allocate.
  spawn_setup setup;
  sigset_t empty;
  sigset_t defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int s : reset_signals)
    sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&setup.attributes, &empty);
  posix_spawnattr_setsigdefault(&setup.attributes, &defaults);
  posix_spawnattr_setflags(&setup.attributes,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  // The command gets the guard's stdin, stdout and stderr, and not the
  // report pipe.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, STDERR_FILENO + 1);

  // Searched in the worker's PATH, as the configuration check did.
  const char* path = ::getenv("PATH");
  auto program = find_program(
      request.argv[0], path ? std::optional<std::string>(path) : std::nullopt);
  if (!program)
    throw spawn_error("cannot start \"" + request.argv[0] +
                      "\": " + std::strerror(ENOENT));
  auto argv = pointers(request.argv);
  auto envp = pointers(request.env);
  // For a script without "#!": "/bin/sh", its path, then the arguments.
  std::vector<char*> script_argv{const_cast<char*>("/bin/sh"), program->data()};
  script_argv.insert(script_argv.end(), argv.begin() + 1, argv.end());
  descriptor null_input{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (null_input.get() < 0)
    throw spawn_error(std::string{"cannot open /dev/null: "} +
                      std::strerror(errno));
  descriptor report_reader;
  descriptor report_writer;
  open_pipe(report_reader, report_writer);
  above_standard(null_input);
  above_standard(report_writer);

  // No signal handler of the worker may run in the guard.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t worker = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0)
    guard_command(setup, program->c_str(), argv.data(), script_argv.data(),
                  envp.data(), null_input.get(), output_writer,
                  report_writer.get(), worker);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0)
    throw spawn_error("cannot start \"" + request.argv[0] +
                      "\": " + std::strerror(fork_error));
  // Also here, so that a signal to the group cannot precede the guard's
  // own setpgid.
  ::setpgid(pid, pid);

  // The guard closes the report pipe once the command has started; a
  // number on it is why it could not.
  report_writer.reset();
  int error = 0;
  ssize_t n;
  do {
    n = ::read(report_reader.get(), &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof error)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw spawn_error("cannot start \"" + request.argv[0] +
                      "\": " + std::strerror(error));
  }
  return pid;
}

}  // namespace

std::string default_search_path() {
  const std::size_t size = ::confstr(_CS_PATH, nullptr, 0);
  if (size == 0)
    return "/bin:/usr/bin";
  std::string text(size, '\0');
  ::confstr(_CS_PATH, text.data(), size);
  text.resize(size - 1);
  return text;
}

std::optional<std::string> find_program(
    const std::string& program,
    const std::optional<std::string>& path_variable) {
  if (program.find('/') != std::string::npos)
    return program;
  const std::string search = path_variable.value_or(default_search_path());
  std::size_t start = 0;
  while (true) {
    const auto end = search.find(':', start);
    const auto dir = search.substr(
        start, end == std::string::npos ? std::string::npos : end - start);
    auto candidate = dir.empty() ? program : dir + "/" + program;
    struct stat info {};
    if (::stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (end == std::string::npos)
      return std::nullopt;
    start = end + 1;
  }
}

std::string signal_name(int signal) {
  if (const char* abbreviation = ::sigabbrev_np(signal))
    return std::string{"SIG"} + abbreviation;
  return "signal " + std::to_string(signal);
}

process_result run_process(const process_request& request) {
  if (request.argv.empty() || request.argv[0].empty())
    throw spawn_error("cannot start a command with an empty argv");

  descriptor reader;
  descriptor writer;
  open_pipe(reader, writer);
  above_standard(writer);
  pid_t pid = spawn(request, writer.get());
  writer.reset();
  ::fcntl(reader.get(), F_SETFL, O_NONBLOCK);
  child_process child{pid, reader.release(), request.tail_limit};

  process_result result;
  auto cancelled = [&] {
    return request.cancel != nullptr &&
           request.cancel->load(std::memory_order_relaxed);
  };
  while (!child.exited()) {
    if (cancelled()) {
      result.end = process_result::ending::cancelled;
      break;
    }
    if (clock::now() >= request.deadline) {
      result.end = process_result::ending::timed_out;
      break;
    }
    child.pump(std::min(request.deadline, clock::now() + cancel_check));
  }

  bool stopped = result.end != process_result::ending::exited;
  if (stopped) {
    child.signal_group(SIGTERM);
    child.pump(clock::now() + request.kill_grace);
  }
  // Whatever is left of the group (a grandchild that ignored SIGTERM, or
  // a daemon started by a command that exited) goes now, while the
  // unreaped leader still pins the group id.
  child.signal_group(SIGKILL);
  child.pump(clock::time_point::max());
  child.drain(milliseconds{500});
  int status = child.reap();

  if (!stopped) {
    if (WIFSIGNALED(status)) {
      result.end = process_result::ending::signaled;
      result.signal = WTERMSIG(status);
    } else {
      result.status = WEXITSTATUS(status);
    }
  }
  result.output_bytes = child.output_bytes();
  result.output_tail = child.take_tail();
  return result;
}

}  // namespace imagen
