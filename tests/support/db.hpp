// PostgreSQL helpers for tests: the admin URL, a scratch database per test
// and plain libpq queries on a connection of their own.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace imagen::test {

/// IMAGEN_TEST_DATABASE_URL. When it is unset, the calling test fails with
/// a message saying so (the helper throws after recording the failure).
std::string test_admin_url();

/// A database that lives as long as this object: created with a unique
/// name through the admin URL, dropped WITH (FORCE) on destruction.
class scratch_database {
 public:
  enum class schema { empty, migrated };

  explicit scratch_database(schema s = schema::migrated);
  ~scratch_database();
  scratch_database(const scratch_database&) = delete;
  scratch_database& operator=(const scratch_database&) = delete;

  const std::string& name() const { return name_; }
  /// The admin URL with this database in place of the admin one.
  const std::string& url() const { return url_; }

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

using row = std::vector<std::optional<std::string>>;

/// Runs one statement with text parameters; returns its rows (NULL as an
/// empty optional). Throws std::runtime_error with the server's message.
std::vector<row> query(const std::string& url, const std::string& sql,
                       const std::vector<std::string>& params = {});

/// Runs one or more statements without parameters.
void exec(const std::string& url, const std::string& sql);

/// The first column of the first row of `query`, which must exist.
std::string scalar(const std::string& url, const std::string& sql,
                   const std::vector<std::string>& params = {});

}  // namespace imagen::test
