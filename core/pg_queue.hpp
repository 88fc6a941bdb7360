// The PostgreSQL implementation of job_queue: one connection, opened
// lazily and reopened after a failure, with every hot statement prepared.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/pg_settings.hpp"
#include "core/queue.hpp"

namespace imagen {

class pg_connection;
namespace sql {
class claim_statements;
}

/// Not thread-safe: one owner (an actor) per instance.
class pg_queue final : public job_queue {
 public:
  pg_queue(pg_settings settings, std::string worker_id, retry_policy retry,
           int default_max_attempts);
  /// Over a connection opened elsewhere: the integration tests look into
  /// its session (pg_prepared_statements).
  pg_queue(std::unique_ptr<pg_connection> connection, std::string worker_id,
           retry_policy retry, int default_max_attempts);
  ~pg_queue() override;

  pg_queue(const pg_queue&) = delete;
  pg_queue& operator=(const pg_queue&) = delete;

  std::vector<job> claim_batch(int limit) override;
  std::vector<write_result> write_outcomes(
      const std::vector<outcome>& outcomes) override;
  std::vector<job_ref> heartbeat(const std::vector<job_ref>& jobs) override;
  int rescue_expired(std::chrono::milliseconds lease) override;
  int release(const std::vector<job_ref>& jobs) override;
  int requeue_orphans(const std::vector<job_ref>& keep,
                      const std::string& reason) override;
  std::optional<std::chrono::milliseconds> next_pending_delay() override;

  const std::string& worker_id() const { return worker_id_; }

 private:
  /// One fenced statement per kind of outcome (successes, failures,
  /// cancellations); several kinds share one transaction.
  std::vector<write_result> write_batch(const std::vector<outcome>& outcomes);
  /// Records an outcome the database refused (bad bytes, out-of-range
  /// values) as a failure that says so, rather than retrying it for ever.
  write_result write_refused(const outcome& refused, const queue_error& why);

  std::unique_ptr<pg_connection> connection_;
  std::string worker_id_;
  std::unique_ptr<sql::claim_statements> claims_;
  retry_policy retry_;
  int default_max_attempts_;
};

}  // namespace imagen
