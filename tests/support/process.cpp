#include "tests/support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace imagen::test {

namespace fs = std::filesystem;

namespace {

std::system_error sys_error(const std::string& what) {
  return std::system_error(errno, std::generic_category(), what);
}

/// 128 + signal for a signal, the exit status otherwise.
int decode_status(int raw) {
  if (WIFSIGNALED(raw))
    return 128 + WTERMSIG(raw);
  return WEXITSTATUS(raw);
}

bool is_imagen_setting(const std::string& name) {
  return name.rfind("IMAGEN_", 0) == 0 && name.rfind("IMAGEN_TEST_", 0) != 0;
}

std::vector<std::string> child_environment(const env_changes& changes) {
  std::map<std::string, std::string> vars;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text(*entry);
    auto eq = text.find('=');
    if (eq == std::string::npos)
      continue;
    auto name = text.substr(0, eq);
    if (!is_imagen_setting(name))
      vars[name] = text.substr(eq + 1);
  }
  for (const auto& [name, value] : changes) {
    if (value)
      vars[name] = *value;
    else
      vars.erase(name);
  }
  std::vector<std::string> result;
  for (const auto& [name, value] : vars)
    result.push_back(name + "=" + value);
  return result;
}

std::vector<char*> c_strings(std::vector<std::string>& texts) {
  std::vector<char*> result;
  for (auto& text : texts)
    result.push_back(text.data());
  result.push_back(nullptr);
  return result;
}

}  // namespace

temp_dir::temp_dir(const std::string& prefix) {
  std::string pattern =
      (fs::temp_directory_path() / (prefix + ".XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr)
    throw sys_error("mkdtemp " + pattern);
  path_ = pattern;
}

temp_dir::~temp_dir() {
  // Tests make parts of the tree read-only or replace directories by files;
  // give write access back so that removal cannot fail half-way.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           path_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec))
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add,
                      ec);
  }
  fs::remove_all(path_, ec);
}

bool wait_until(const std::function<bool()>& condition, milliseconds timeout,
                milliseconds poll) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(poll);
  }
  return condition();
}

process::process(const std::string& executable,
                 const std::vector<std::string>& args, const env_changes& env)
    : dir_("imagen-proc") {
  std::vector<std::string> argv_texts{executable};
  argv_texts.insert(argv_texts.end(), args.begin(), args.end());
  auto env_texts = child_environment(env);
  auto argv = c_strings(argv_texts);
  auto envp = c_strings(env_texts);

  // Everything the child needs is opened before fork: between fork and
  // exec only async-signal-safe calls are allowed.
  auto out_path = (dir_.path() / "stdout").string();
  auto err_path = (dir_.path() / "stderr").string();
  int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  int out = ::open(out_path.c_str(), flags, 0644);
  int err = ::open(err_path.c_str(), flags, 0644);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || err < 0 || in < 0)
    throw sys_error("open the output files of " + executable);

  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  int fork_errno = errno;
  ::close(in);
  ::close(out);
  ::close(err);
  if (pid_ < 0) {
    errno = fork_errno;
    throw sys_error("fork for " + executable);
  }
  // Also set in the parent, so that kill_group works even when it is called
  // before the child has run its first instruction.
  ::setpgid(pid_, pid_);
}

process::~process() {
  if (!status_) {
    kill_group();
    wait_for_exit(milliseconds(10000));
  }
}

std::optional<int> process::wait_for_exit(milliseconds timeout) {
  if (status_)
    return status_;
  wait_until(
      [this] {
        int raw = 0;
        pid_t got = ::waitpid(pid_, &raw, WNOHANG);
        if (got == pid_)
          status_ = decode_status(raw);
        return status_.has_value();
      },
      timeout, milliseconds(10));
  return status_;
}

bool process::running() {
  return !wait_for_exit(milliseconds(0));
}

void process::signal(int sig) {
  if (!status_)
    ::kill(pid_, sig);
}

void process::kill_group() {
  if (!status_)
    ::kill(-pid_, SIGKILL);
}

std::string process::stdout_text() const {
  return read_file(dir_.path() / "stdout");
}

std::string process::stderr_text() const {
  return read_file(dir_.path() / "stderr");
}

std::string process::output() const {
  return stderr_text() + stdout_text();
}

std::unique_ptr<process> start_worker(const std::vector<std::string>& args,
                                      const env_changes& env) {
  return std::make_unique<process>(IMAGEN_WORKER_BINARY, args, env);
}

finished run_worker(const std::vector<std::string>& args,
                    const env_changes& env, milliseconds timeout) {
  auto child = start_worker(args, env);
  finished result;
  result.status = child->wait_for_exit(timeout);
  if (!result.status)
    child->kill_group();
  child->wait_for_exit(milliseconds(5000));
  result.out = child->stdout_text();
  result.all = child->output();
  return result;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out)
    throw std::runtime_error("cannot write " + path.string());
}

std::vector<pid_t> processes_matching(const std::string& needle) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream stat_file(entry.path() / "stat");
    std::string stat_line;
    std::getline(stat_file, stat_line);
    // The state letter follows the ")" that closes the command name.
    auto close = stat_line.rfind(')');
    if (close == std::string::npos || close + 2 >= stat_line.size() ||
        stat_line[close + 2] == 'Z')
      continue;
    std::ifstream cmdline(entry.path() / "cmdline", std::ios::binary);
    std::string args((std::istreambuf_iterator<char>(cmdline)),
                     std::istreambuf_iterator<char>());
    for (auto& c : args)
      if (c == '\0')
        c = ' ';
    if (args.find(needle) != std::string::npos)
      found.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return found;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      result.push_back(line);
  return result;
}

}  // namespace imagen::test
