// Control of the test's PostgreSQL server for the fault tests: restart it,
// stop it and start it again with pg_ctl, and cut the worker's sessions.
// The server comes from IMAGEN_TEST_PG_DATA and IMAGEN_TEST_PG_BIN; when
// IMAGEN_TEST_PG_RUNAS names a user, pg_ctl runs as that user (initdb and
// pg_ctl refuse to run as root).
#pragma once

#include <string>

namespace imagen::test {

class pg_server {
 public:
  /// Reads the environment; fails the calling test when it is incomplete.
  pg_server();

  /// `pg_ctl restart -m fast`; throws when pg_ctl fails.
  void restart() const;
  /// `pg_ctl stop -m fast`; throws when pg_ctl fails.
  void stop() const;
  /// `pg_ctl start`; throws when pg_ctl fails.
  void start() const;
  /// Starts the server when it is not running (pg_ctl status says so).
  void ensure_running() const;

 private:
  int pg_ctl(const std::string& action, bool fast) const;

  std::string data_;
  std::string bin_;
  std::string run_as_;
};

/// Stops the server while it lives and starts it again on destruction, so
/// that a failing test does not leave the next one without a server.
class server_down {
 public:
  explicit server_down(const pg_server& server);
  ~server_down();
  server_down(const server_down&) = delete;
  server_down& operator=(const server_down&) = delete;

 private:
  const pg_server& server_;
};

/// Terminates every session on database `name` except the caller's own
/// (through `admin_url`); returns how many were terminated.
int terminate_sessions(const std::string& admin_url, const std::string& name);

}  // namespace imagen::test
