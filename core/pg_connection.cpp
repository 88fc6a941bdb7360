#include "core/pg_connection.hpp"

#include <poll.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include <libpq-fe.h>

#include "core/log.hpp"
#include "core/queue.hpp"

namespace imagen {

namespace {

using std::chrono::milliseconds;

// TCP keepalives find a dead peer on an idle connection within about
// idle + interval * count = 11 s; tcp_user_timeout does the same for data
// that the peer never acknowledges.
constexpr const char* keepalive_keys[] = {
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout"};
constexpr const char* keepalive_values[] = {"1", "5", "2", "3", "10000"};

// SQLSTATE classes after which the same statement may succeed later.
bool transient_state(const char* state) {
  if (state == nullptr) {
    return true;  // no SQLSTATE: libpq itself failed, usually the socket
  }
  std::string_view s(state);
  return s.rfind("08", 0) == 0 ||  // connection exception
         s.rfind("53", 0) == 0 ||  // insufficient resources
         s == "40001" ||           // serialization failure
         s == "40P01" ||           // deadlock detected
         s == "55P03" ||           // lock not available
         s == "57014" ||           // query cancelled
         s.rfind("57P", 0) == 0;   // admin shutdown, crash shutdown
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

// --- pg_rows ---------------------------------------------------------------

pg_rows::~pg_rows() {
  PQclear(result_);
}

pg_rows::pg_rows(pg_rows&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)) {}

pg_rows& pg_rows::operator=(pg_rows&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}

int pg_rows::size() const {
  return result_ == nullptr ? 0 : PQntuples(result_);
}

bool pg_rows::is_null(int row, int column) const {
  return PQgetisnull(result_, row, column) != 0;
}

std::string_view pg_rows::text(int row, int column) const {
  return std::string_view(PQgetvalue(result_, row, column),
                          PQgetlength(result_, row, column));
}

std::string pg_rows::string(int row, int column) const {
  return std::string(text(row, column));
}

std::int64_t pg_rows::int64(int row, int column) const {
  return std::strtoll(PQgetvalue(result_, row, column), nullptr, 10);
}

int pg_rows::int32(int row, int column) const {
  return static_cast<int>(int64(row, column));
}

double pg_rows::float64(int row, int column) const {
  return std::strtod(PQgetvalue(result_, row, column), nullptr);
}

std::int64_t pg_rows::affected() const {
  return result_ == nullptr ? 0
                            : std::strtoll(PQcmdTuples(result_), nullptr, 10);
}

// --- pg_connection ---------------------------------------------------------

pg_connection::pg_connection(pg_settings settings)
    : settings_(std::move(settings)) {}

pg_connection::~pg_connection() {
  disconnect();
}

void pg_connection::disconnect() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  prepared_.clear();
}

std::string pg_connection::scrub(std::string message) const {
  return scrub_secrets(settings_.url, std::move(message));
}

void pg_connection::on_notice(void* self, const char* message) {
  auto text = static_cast<pg_connection*>(self)->scrub(trim(message));
  if (text.rfind("WARNING", 0) == 0) {
    log::warn("db.notice", {{"message", text}});
  } else {
    log::info("db.notice", {{"message", text}});
  }
}

void pg_connection::connect_until(clock::time_point until) {
  if (conn_ != nullptr) {
    return;
  }

  // Our defaults come first so that a URL that sets the same keyword wins;
  // dbname is expanded as a whole URL or conninfo (expand_dbname = 1).
  std::vector<const char*> keys(std::begin(keepalive_keys),
                                std::end(keepalive_keys));
  std::vector<const char*> values(std::begin(keepalive_values),
                                  std::end(keepalive_values));
  keys.push_back("application_name");
  values.push_back(settings_.application_name.c_str());
  if (!settings_.url.empty()) {
    keys.push_back("dbname");
    values.push_back(settings_.url.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  // A host name is resolved inside PQconnectStartParams, which does not
  // honour the deadline; an IP address or a socket path never blocks here.
  conn_ = PQconnectStartParams(keys.data(), values.data(), 1);
  if (conn_ == nullptr) {
    throw queue_error("connect: out of memory", true);
  }
  // libpq prints server notices and warnings to stderr by default, which
  // breaks the one-event-per-line (and JSON) log.
  PQsetNoticeProcessor(conn_, &pg_connection::on_notice, this);
  if (PQstatus(conn_) == CONNECTION_BAD) {
    fail_connection("connect");
  }
  for (;;) {
    switch (PQconnectPoll(conn_)) {
      case PGRES_POLLING_OK:
        if (PQsetnonblocking(conn_, 1) != 0) {
          fail_connection("connect");
        }
        run_session_setup(until);
        return;
      case PGRES_POLLING_FAILED:
        fail_connection("connect");
      case PGRES_POLLING_READING:
        wait_socket(false, "connect", until);
        break;
      case PGRES_POLLING_WRITING:
        wait_socket(true, "connect", until);
        break;
      default:
        break;
    }
  }
}

void pg_connection::wait_socket(bool for_write, const char* what,
                                clock::time_point deadline) {
  for (;;) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - clock::now());
    if (left.count() <= 0) {
      fail_deadline(what);
    }
    pollfd fd{PQsocket(conn_), static_cast<short>(for_write ? POLLOUT : POLLIN),
              0};
    int ready = ::poll(&fd, 1, static_cast<int>(left.count()) + 1);
    if (ready > 0) {
      return;
    }
    if (ready < 0 && errno != EINTR) {
      fail_connection(what);
    }
  }
}

void pg_connection::fail_deadline(const char* what) {
  // Ask the server to stop working on our behalf; the connection is dropped
  // either way, so a late answer cannot be mistaken for the next one's.
  // PQcancel opens a connection of its own and is not bounded by our
  // deadline; on a healthy network it returns at once.
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
    if (PGcancel* cancel = PQgetCancel(conn_)) {
      char ignored[256];
      PQcancel(cancel, ignored, sizeof(ignored));
      PQfreeCancel(cancel);
    }
  }
  disconnect();
  throw queue_error(std::string(what) + " did not finish within " +
                        std::to_string(settings_.deadline.count()) + " ms",
                    true);
}

void pg_connection::fail_connection(const char* what) {
  std::string message = conn_ == nullptr ? std::string("no connection")
                                         : scrub(trim(PQerrorMessage(conn_)));
  disconnect();
  throw queue_error(std::string(what) + " failed: " + message, true);
}

void pg_connection::send_failed(const char* what) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    fail_connection(what);
  }
  throw queue_error(std::string(what) + " could not be sent: " +
                        scrub(trim(PQerrorMessage(conn_))),
                    false);
}

pg_rows pg_connection::finish(const char* what, clock::time_point deadline) {
  // Flush what did not fit in the socket buffer.
  for (;;) {
    int flushed = PQflush(conn_);
    if (flushed == 0) {
      break;
    }
    if (flushed < 0) {
      fail_connection(what);
    }
    wait_socket(true, what, deadline);
    if (PQconsumeInput(conn_) == 0) {
      fail_connection(what);
    }
  }

  // Collect every result; the first error wins, the last rows are kept.
  pg_rows rows;
  std::string error;
  const char* error_state = nullptr;
  std::string state_copy;
  for (;;) {
    while (PQisBusy(conn_) != 0) {
      wait_socket(false, what, deadline);
      if (PQconsumeInput(conn_) == 0) {
        fail_connection(what);
      }
    }
    PGresult* result = PQgetResult(conn_);
    if (result == nullptr) {
      break;
    }
    auto status = PQresultStatus(result);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      rows = pg_rows(result);
    } else {
      if (error.empty()) {
        error = scrub(trim(PQresultErrorMessage(result)));
        if (const char* s = PQresultErrorField(result, PG_DIAG_SQLSTATE)) {
          state_copy = s;
          error_state = state_copy.c_str();
        }
      }
      PQclear(result);
    }
  }

  if (PQstatus(conn_) != CONNECTION_OK) {
    fail_connection(what);
  }
  if (!error.empty()) {
    bool transient = transient_state(error_state);
    if (error_state == nullptr) {
      disconnect();
    }
    throw queue_error(std::string(what) + " failed: " + error, transient);
  }
  return rows;
}

void pg_connection::ensure_prepared(const prepared_statement& statement,
                                    clock::time_point deadline) {
  if (std::find(prepared_.begin(), prepared_.end(), statement.name) !=
      prepared_.end()) {
    return;
  }
  if (PQsendPrepare(conn_, statement.name, statement.text, 0, nullptr) == 0) {
    send_failed(statement.name);
  }
  finish(statement.name, deadline);
  prepared_.push_back(statement.name);
}

pg_rows pg_connection::execute(const prepared_statement& statement,
                               const char* const* params, int count) {
  auto deadline = clock::now() + settings_.deadline;
  connect_until(deadline);
  ensure_prepared(statement, deadline);
  if (PQsendQueryPrepared(conn_, statement.name, count, params, nullptr,
                          nullptr, 0) == 0) {
    send_failed(statement.name);
  }
  return finish(statement.name, deadline);
}

pg_rows pg_connection::query(const prepared_statement& statement,
                             std::initializer_list<const char*> params) {
  auto deadline = clock::now() + settings_.deadline;
  connect_until(deadline);
  if (PQsendQueryParams(conn_, statement.text, static_cast<int>(params.size()),
                        nullptr, params.begin(), nullptr, nullptr, 0) == 0) {
    send_failed(statement.name);
  }
  return finish(statement.name, deadline);
}

void pg_connection::set_session_setup(std::string sql) {
  session_setup_ = std::move(sql);
  if (conn_ != nullptr) {
    run_session_setup(clock::now() + settings_.deadline);
  }
}

void pg_connection::run_session_setup(clock::time_point deadline) {
  if (session_setup_.empty()) {
    return;
  }
  // Within the deadline of the call that connected. A setup that fails
  // says nothing about that call's statement (an outcome refused as bad
  // data would be recorded as a failure): it is transient, and the next
  // call connects and tries the setup again.
  try {
    if (PQsendQuery(conn_, session_setup_.c_str()) == 0) {
      send_failed("session setup");
    }
    finish("session setup", deadline);
  } catch (const queue_error& e) {
    disconnect();
    throw queue_error(e.what(), true);
  }
}

void pg_connection::run_script(const char* name, const char* sql) {
  auto deadline = clock::now() + settings_.deadline;
  connect_until(deadline);
  if (PQsendQuery(conn_, sql) == 0) {
    send_failed(name);
  }
  finish(name, deadline);
}

int pg_connection::socket() const {
  return conn_ == nullptr ? -1 : PQsocket(conn_);
}

}  // namespace imagen
