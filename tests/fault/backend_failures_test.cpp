// Command backends that fail in every way a real generator can: a bad exit
// status, a crash, a hang past the timeout, output that is not a PNG and a
// flood of stderr. Each job ends failed after its attempts with an error
// that says which, the worker keeps running, and no process is left.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr int attempts = 2;

bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() &&
         line[close + 2] != 'Z';
}

TEST(BackendFailures, EachFailureEndsFailedWithItsReasonAndNoProcessLeft) {
  worker_env env;
  // Every command line carries this mark, so a leftover process of this
  // test can be found by it (the worker's own command line does not).
  auto mark = "fake-backend:" + env.dir().string();
  auto pids = env.dir() / "pids";
  fs::create_directory(pids);
  auto backend = [&](const std::string& name, const std::string& script,
                     const std::string& timeout = "30s") {
    return command_backend_toml(
        name, {"/bin/sh", "-c", script + " # " + mark, "{output}"}, timeout);
  };
  auto config = env.write_config(
      "failing.toml",
      backend("exit1", "echo \"CUDA error: out of memory\" >&2; exit 1") +
          backend("segv", "kill -SEGV $$") +
          // The grandchild proves the whole process group is killed.
          backend("hang",
                  "sleep 600 & echo $! > \"" + pids.string() + "/$$\"; wait",
                  "1s") +
          backend("notpng", "echo \"just text\" > \"$0\"") +
          backend("flood",
                  "head -c 20000000 /dev/zero | tr \"\\\\0\" x >&2; "
                  "echo \"the last words\" >&2; exit 1"));
  std::map<std::string, std::string> id_of;
  for (const char* name : {"exit1", "segv", "hang", "notpng", "flood"})
    id_of[name] =
        scalar(env.url(),
               "INSERT INTO imagen.jobs (owner_user_id, prompt, backend, "
               "max_attempts) VALUES ('u', 'fails', $1, $2::int) RETURNING id",
               {name, std::to_string(attempts)});

  auto worker = start_worker({"run", "--config", config}, env.env());
  ASSERT_TRUE(wait_until([&] { return env.count("failed") == 5; }, seconds(60)))
      << worker->output();

  EXPECT_TRUE(worker->running()) << worker->output();
  std::map<std::string, std::vector<std::string>> reasons{
      {"exit1", {"status 1", "CUDA error: out of memory"}},
      {"segv", {"SIGSEGV"}},
      {"hang", {"timed out"}},
      {"notpng", {"PNG"}},
      {"flood", {"status 1", "the last words"}},
  };
  for (const auto& [name, id] : id_of) {
    SCOPED_TRACE(name);
    auto job = env.job(id);
    EXPECT_EQ(job.status, "failed");
    EXPECT_EQ(job.attempt, attempts);
    EXPECT_EQ(job.error_entries, attempts);
    ASSERT_TRUE(job.error);
    for (const auto& reason : reasons[name])
      EXPECT_NE(job.error->find(reason), std::string::npos)
          << "error \"" << *job.error << "\" does not say " << reason;
  }
  // Twenty megabytes of stderr leave only a bounded tail in the row.
  EXPECT_LT(env.job(id_of["flood"]).error->size(), 16u * 1024u);
  EXPECT_TRUE(env.images().empty());

  EXPECT_TRUE(
      wait_until([&] { return processes_matching(mark).empty(); }, seconds(5)));
  int grandchildren = 0;
  for (const auto& entry : fs::directory_iterator(pids)) {
    ++grandchildren;
    auto pid = static_cast<pid_t>(std::stol(read_file(entry.path())));
    EXPECT_TRUE(wait_until([&] { return !alive(pid); }, seconds(5)))
        << "the hanging backend's child " << pid << " survived";
  }
  EXPECT_EQ(grandchildren, attempts);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait_for_exit(seconds(10)), 0) << worker->output();
}

}  // namespace
}  // namespace imagen::test
