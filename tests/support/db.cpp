#include "tests/support/db.hpp"

#include <unistd.h>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "core/migrations.hpp"
#include "core/pg_settings.hpp"

namespace imagen::test {

namespace {

struct conn_closer {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct result_clearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_closer>;
using result_ptr = std::unique_ptr<PGresult, result_clearer>;

conn_ptr open(const std::string& url) {
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"10", url.c_str(), nullptr};
  conn_ptr conn(PQconnectdbParams(keys, values, 1));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("test connection to " + redact_url(url) +
                             " failed: " + PQerrorMessage(conn.get()));
  }
  return conn;
}

bool succeeded(const PGresult* result) {
  auto status = PQresultStatus(result);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

// Replaces the database of a URL or key=value conninfo with `database`.
std::string with_database(const std::string& url, const std::string& name) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) {
    return url + " dbname=" + name;
  }
  auto path = url.find('/', scheme + 3);
  auto query_start = url.find('?', scheme + 3);
  if (path == std::string::npos || path > query_start) {
    path = query_start == std::string::npos ? url.size() : query_start;
    return url.substr(0, path) + "/" + name + url.substr(path);
  }
  auto end = query_start == std::string::npos ? url.size() : query_start;
  return url.substr(0, path + 1) + name + url.substr(end);
}

std::string unique_name() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return "imagen_test_" + std::to_string(::getpid()) + "_" +
         std::to_string(counter++) + "_" + std::to_string(random() % 100000);
}

}  // namespace

std::string test_admin_url() {
  const char* url = std::getenv("IMAGEN_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "IMAGEN_TEST_DATABASE_URL is not set: these tests need "
                     "a PostgreSQL admin URL (tools/test starts a server and "
                     "sets it)";
    throw std::runtime_error("IMAGEN_TEST_DATABASE_URL is not set");
  }
  return url;
}

scratch_database::scratch_database(schema s)
    : admin_url_(test_admin_url()), name_(unique_name()) {
  exec(admin_url_, "CREATE DATABASE " + name_);
  url_ = with_database(admin_url_, name_);
  if (s == schema::migrated) {
    pg_settings settings;
    settings.url = url_;
    migrate(settings);
  }
}

scratch_database::~scratch_database() {
  try {
    exec(admin_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "could not drop " << name_ << ": " << e.what();
  }
}

std::vector<row> query(const std::string& url, const std::string& sql,
                       const std::vector<std::string>& params) {
  auto conn = open(url);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    values.push_back(p.c_str());
  }
  result_ptr result(PQexecParams(conn.get(), sql.c_str(),
                                 static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
  if (!succeeded(result.get())) {
    throw std::runtime_error("query failed: " + sql + ": " +
                             PQerrorMessage(conn.get()));
  }
  std::vector<row> rows;
  int columns = PQnfields(result.get());
  for (int r = 0; r < PQntuples(result.get()); ++r) {
    row current;
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(result.get(), r, c)) {
        current.emplace_back();
      } else {
        current.emplace_back(PQgetvalue(result.get(), r, c));
      }
    }
    rows.push_back(std::move(current));
  }
  return rows;
}

void exec(const std::string& url, const std::string& sql) {
  auto conn = open(url);
  result_ptr result(PQexec(conn.get(), sql.c_str()));
  if (!succeeded(result.get())) {
    throw std::runtime_error("exec failed: " + sql + ": " +
                             PQerrorMessage(conn.get()));
  }
}

std::string scalar(const std::string& url, const std::string& sql,
                   const std::vector<std::string>& params) {
  auto rows = query(url, sql, params);
  if (rows.empty() || rows[0].empty()) {
    throw std::runtime_error("no rows from: " + sql);
  }
  return rows[0][0].value_or("");
}

}  // namespace imagen::test
