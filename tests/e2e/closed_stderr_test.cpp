// A worker whose log reader goes away (`run 2>&1 | head`) keeps working:
// SIGPIPE must not end it with its claims stranded until the lease runs
// out.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

TEST(ClosedStderr, WorkerOutlivesItsLogReaderAndDrainsTheQueue) {
  worker_env env;
  auto ids = env.insert_jobs(20);

  // Built before fork: the child only calls what is safe after it.
  auto changes = env.env();

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: stderr is the pipe whose reader is already closed, so the
    // first log line raises SIGPIPE; SIG_DFL as a shell would leave it.
    ::signal(SIGPIPE, SIG_DFL);
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    for (const auto& [key, value] : changes) {
      if (value)
        ::setenv(key.c_str(), value->c_str(), 1);
      else
        ::unsetenv(key.c_str());
    }
    ::execl(IMAGEN_WORKER_BINARY, IMAGEN_WORKER_BINARY, "run",
            "--exit-when-idle", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  ::close(fds[0]);

  int status = 0;
  bool ended =
      wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                 std::chrono::seconds(60));
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(ended) << "the worker did not finish the queue";
  ASSERT_FALSE(WIFSIGNALED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(env.count("done"), static_cast<std::int64_t>(ids.size()));
  EXPECT_EQ(env.count("running") + env.count("pending"), 0);
}

}  // namespace
}  // namespace imagen::test
