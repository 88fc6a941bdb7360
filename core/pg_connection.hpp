// One libpq connection with a deadline on every call. Only core/ uses it;
// libpq's types are forward-declared so this header stays free of
// libpq-fe.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/pg_settings.hpp"

struct pg_conn;
struct pg_result;

namespace imagen {

/// A statement prepared once per connection, under `name`.
struct prepared_statement {
  const char* name;
  const char* text;
};

/// The rows of one result; owns the PGresult.
class pg_rows {
 public:
  pg_rows() = default;
  explicit pg_rows(pg_result* result) : result_(result) {}
  ~pg_rows();
  pg_rows(pg_rows&& other) noexcept;
  pg_rows& operator=(pg_rows&& other) noexcept;
  pg_rows(const pg_rows&) = delete;
  pg_rows& operator=(const pg_rows&) = delete;

  int size() const;
  bool is_null(int row, int column) const;
  /// The text of a value; empty for NULL.
  std::string_view text(int row, int column) const;
  std::string string(int row, int column) const;
  /// 0 for NULL.
  std::int64_t int64(int row, int column) const;
  int int32(int row, int column) const;
  double float64(int row, int column) const;
  /// Rows touched by an INSERT, UPDATE or DELETE.
  std::int64_t affected() const;

 private:
  pg_result* result_ = nullptr;
};

/// Not thread-safe. Every call throws queue_error on failure: transient
/// for a lost connection or a deadline (the connection is then dropped and
/// the next call reconnects), permanent for an error of the statement.
class pg_connection {
 public:
  using clock = std::chrono::steady_clock;

  explicit pg_connection(pg_settings settings);
  ~pg_connection();
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  /// Connects when not connected, within `deadline`.
  void connect(std::chrono::milliseconds deadline) {
    connect_until(clock::now() + deadline);
  }
  bool connected() const { return conn_ != nullptr; }
  /// Drops the connection; the next call reconnects.
  void disconnect();

  /// Runs a prepared statement (prepared on first use on this connection)
  /// and returns its rows. NULL parameters are null pointers.
  pg_rows execute(const prepared_statement& statement,
                  const char* const* params, int count);
  pg_rows execute(const prepared_statement& statement,
                  std::initializer_list<const char*> params) {
    return execute(statement, params.begin(), static_cast<int>(params.size()));
  }

  /// Runs a statement without preparing it (rare statements).
  pg_rows query(const prepared_statement& statement,
                std::initializer_list<const char*> params);

  /// Runs several statements without parameters (BEGIN, migrations);
  /// `name` says which in errors.
  void run_script(const char* name, const char* sql);

  /// Statements (session settings) run after every connect, before
  /// anything else and within the connecting call's deadline; when they
  /// fail the connection is dropped and the error is transient. Set on a
  /// connection that is open, they run at once.
  void set_session_setup(std::string sql);

  /// The socket to poll for notifications; -1 when not connected.
  int socket() const;
  /// The libpq handle for the listener's PQnotifies; null when disconnected.
  pg_conn* native() const { return conn_; }
  const pg_settings& settings() const { return settings_; }

  /// `message` with every trace of the URL's password masked; every text
  /// from libpq goes through it before it is logged or thrown.
  std::string scrub(std::string message) const;

 private:
  /// libpq's notice processor: a server NOTICE or WARNING becomes a log
  /// event instead of a raw line on stderr.
  static void on_notice(void* self, const char* message);
  void connect_until(clock::time_point deadline);
  void run_session_setup(clock::time_point deadline);
  void ensure_prepared(const prepared_statement& statement,
                       clock::time_point deadline);
  void send_failed(const char* what);
  pg_rows finish(const char* what, clock::time_point deadline);
  void wait_socket(bool for_write, const char* what,
                   clock::time_point deadline);
  [[noreturn]] void fail_deadline(const char* what);
  [[noreturn]] void fail_connection(const char* what);

  pg_settings settings_;
  pg_conn* conn_ = nullptr;
  std::vector<const char*> prepared_;  // names prepared on conn_
  std::string session_setup_;
};

}  // namespace imagen
