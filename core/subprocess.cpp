#include "core/subprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
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

/// In the forked child: sends errno, why the command cannot start,
/// through `report` and ends.
[[noreturn]] void report_errno(int report) {
  int error = errno;
  [[maybe_unused]] auto n = ::write(report, &error, sizeof error);
  ::_exit(127);
}

/// In the forked child, up to exec: only async-signal-safe calls. Never
/// returns.
[[noreturn]] void become_command(char* const* argv, char* const* envp,
                                 int null_input, int output_writer, int report,
                                 pid_t worker) {
  // Own process group (pgid = pid), so that a timeout kills everything
  // the command started.
  if (::setpgid(0, 0) != 0)
    report_errno(report);
  // If the worker dies, even by kill -9, the kernel kills the command
  // too, rather than leaving it to hold a GPU for nobody. (The signal
  // follows the death of the thread that forked, the slot's own thread,
  // which lives as long as the slot.) Its own children are reached by the
  // group kill only while the worker lives.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    report_errno(report);
  if (::getppid() != worker) {
    errno = ESRCH;  // the worker died before the line above
    report_errno(report);
  }
  struct sigaction standard {};
  standard.sa_handler = SIG_DFL;
  for (int s : reset_signals)
    ::sigaction(s, &standard, nullptr);
  if (::dup2(null_input, STDIN_FILENO) < 0 ||
      ::dup2(output_writer, STDOUT_FILENO) < 0 ||
      ::dup2(output_writer, STDERR_FILENO) < 0)
    report_errno(report);
  // Descriptors of the worker (database sockets, other slots' pipes) must
  // not leak into the command, even those opened without O_CLOEXEC; the
  // report pipe too closes on a successful exec.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    report_errno(report);
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  // Searches the worker's PATH, as the configuration check did.
  ::execvpe(argv[0], argv, envp);
  report_errno(report);
}

/// Starts the command with fork and exec rather than posix_spawn, which
/// cannot ask for a parent-death signal. Throws spawn_error with the
/// reason when it cannot start.
pid_t spawn(const process_request& request, int output_writer) {
  // Everything the child uses is made before fork: after it, in a
  // process with other threads, the child may not allocate.
  auto argv = pointers(request.argv);
  auto envp = pointers(request.env);
  descriptor null_input{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (null_input.get() < 0)
    throw spawn_error(std::string{"cannot open /dev/null: "} +
                      std::strerror(errno));
  descriptor report_reader;
  descriptor report_writer;
  open_pipe(report_reader, report_writer);

  // No signal handler of the worker may run in the child before exec.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t worker = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0)
    become_command(argv.data(), envp.data(), null_input.get(), output_writer,
                   report_writer.get(), worker);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0)
    throw spawn_error("cannot start \"" + request.argv[0] +
                      "\": " + std::strerror(fork_error));
  // Also here, so that a signal to the group cannot precede the child's
  // own setpgid.
  ::setpgid(pid, pid);

  // The report pipe closes at exec; a number on it is why exec failed.
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
