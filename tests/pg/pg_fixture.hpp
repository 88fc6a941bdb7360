// Shared arrangement of the PostgreSQL integration tests: a migrated
// scratch database per test, queues on it, and short readers of job rows.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/job.hpp"
#include "core/pg_admin.hpp"
#include "core/pg_queue.hpp"
#include "core/pg_settings.hpp"
#include "tests/support/db.hpp"

namespace imagen::test {

class pg_test : public ::testing::Test {
 protected:
  scratch_database db;

  pg_settings settings(
      std::chrono::milliseconds deadline = std::chrono::seconds(5)) const {
    pg_settings s;
    s.url = db.url();
    s.deadline = deadline;
    return s;
  }

  std::unique_ptr<pg_queue> make_queue(const std::string& worker = "worker-a",
                                       retry_policy retry = {},
                                       int default_max_attempts = 3) const {
    return std::make_unique<pg_queue>(settings(), worker, retry,
                                      default_max_attempts);
  }

  /// Inserts `count` pending jobs through enqueue; returns their ids.
  std::vector<std::string> add_jobs(int count, int priority = 0) const {
    enqueue_request request;
    request.prompt = "a lighthouse at dusk";
    request.count = count;
    request.priority = priority;
    return enqueue(settings(), request);
  }

  /// One column of one job as text; empty for NULL.
  std::string column(const std::string& id, const std::string& name) const {
    auto rows =
        query(db.url(),
              "SELECT " + name + "::text FROM imagen.jobs WHERE id = $1", {id});
    EXPECT_EQ(rows.size(), 1u) << "job " << id;
    return rows.empty() ? "" : rows[0][0].value_or("");
  }

  bool is_null(const std::string& id, const std::string& name) const {
    return scalar(db.url(),
                  "SELECT (" + name +
                      " IS NULL)::text FROM imagen.jobs "
                      "WHERE id = $1",
                  {id}) == "true";
  }

  std::int64_t count(const std::string& sql,
                     const std::vector<std::string>& params = {}) const {
    return std::stoll(scalar(db.url(), sql, params));
  }
};

/// An artifact as a pipeline would report it.
inline artifact sample_image(const std::string& id) {
  artifact a;
  a.path = "/var/images/" + id + ".png";
  a.sha256 = std::string(64, 'a');
  a.bytes = 1234;
  a.width = 64;
  a.height = 48;
  a.mime = "image/png";
  return a;
}

}  // namespace imagen::test
