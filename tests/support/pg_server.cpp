#include "tests/support/pg_server.hpp"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/db.hpp"
#include "tests/support/process.hpp"

namespace imagen::test {

namespace {

constexpr const char* terminate_others =
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = $1 AND pid <> pg_backend_pid()";

std::string required_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name
                  << " is not set: the fault tests control the PostgreSQL "
                     "server (tools/test sets it)";
    throw std::runtime_error(std::string(name) + " is not set");
  }
  return value;
}

}  // namespace

pg_server::pg_server()
    : data_(required_env("IMAGEN_TEST_PG_DATA")),
      bin_(required_env("IMAGEN_TEST_PG_BIN")) {
  if (const char* user = std::getenv("IMAGEN_TEST_PG_RUNAS"))
    run_as_ = user;
}

int pg_server::pg_ctl(const std::string& action, bool fast) const {
  // The server log goes next to the data directory, where pg_start put it.
  auto log = std::filesystem::path(data_).parent_path() / "server.log";
  std::vector<std::string> args{"-D", data_, "-w",        "-t",
                                "60", "-l",  log.string()};
  if (fast) {
    args.push_back("-m");
    args.push_back("fast");
  }
  args.push_back(action);
  std::string executable = bin_ + "/pg_ctl";
  if (!run_as_.empty()) {
    args.insert(args.begin(), {"-u", run_as_, "--", executable});
    executable = "/usr/sbin/runuser";
  }
  process ctl(executable, args);
  auto status = ctl.wait_for_exit(std::chrono::seconds(90));
  return status.value_or(-1);
}

void pg_server::restart() const {
  if (int status = pg_ctl("restart", true); status != 0)
    throw std::runtime_error("pg_ctl restart exited " + std::to_string(status));
}

void pg_server::stop() const {
  if (int status = pg_ctl("stop", true); status != 0)
    throw std::runtime_error("pg_ctl stop exited " + std::to_string(status));
}

void pg_server::start() const {
  if (int status = pg_ctl("start", false); status != 0)
    throw std::runtime_error("pg_ctl start exited " + std::to_string(status));
}

void pg_server::ensure_running() const {
  // pg_ctl status exits 3 when no server runs.
  if (pg_ctl("status", false) != 0)
    start();
}

server_down::server_down(const pg_server& server) : server_(server) {
  server_.stop();
}

server_down::~server_down() {
  try {
    server_.ensure_running();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "could not start PostgreSQL again: " << e.what();
  }
}

int terminate_sessions(const std::string& admin_url, const std::string& name) {
  return std::stoi(scalar(admin_url, terminate_others, {name}));
}

}  // namespace imagen::test
