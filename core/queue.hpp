// The queue interface: the only way the actors reach `imagen.jobs`. The
// PostgreSQL implementation lives in pg_queue; the deterministic actor
// tests use an in-memory fake.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace imagen {

/// A database call failed. `transient` is true when retrying later may
/// succeed (lost connection, deadline, serialization failure).
class queue_error : public std::runtime_error {
 public:
  queue_error(const std::string& what, bool transient)
      : std::runtime_error(what), transient_(transient) {}
  bool transient() const { return transient_; }

 private:
  bool transient_;
};

/// How a fenced write ended for one outcome.
enum class write_result {
  applied,    // the row took the outcome
  lost_lease  // the row is no longer ours: the outcome was discarded
};

/// Tunables of the retry schedule, applied with database time.
struct retry_policy {
  std::chrono::milliseconds base{5000};
  std::chrono::milliseconds cap{std::chrono::minutes(10)};
};

/// Every call may throw queue_error; none blocks longer than the deadline
/// the implementation was built with.
class job_queue {
 public:
  virtual ~job_queue() = default;

  /// Claims at most `limit` runnable jobs for this worker in one statement
  /// (`FOR UPDATE SKIP LOCKED`); empty when none is runnable.
  virtual std::vector<job> claim_batch(int limit) = 0;

  /// Writes outcomes, all or none of each kind, each fenced by claimed_by
  /// and attempt; returns one result per outcome, in order.
  virtual std::vector<write_result> write_outcomes(
      const std::vector<outcome>& outcomes) = 0;

  /// Renews the lease of the given claims; returns the ones no longer ours.
  virtual std::vector<job_ref> heartbeat(const std::vector<job_ref>& jobs) = 0;

  /// Returns rows whose heartbeat is older than `lease` to `pending`, or to
  /// `failed` when their attempts are used up; returns how many were moved.
  virtual int rescue_expired(std::chrono::milliseconds lease) = 0;

  /// Gives unfinished claims back to `pending` without counting the
  /// attempt (shutdown); returns how many rows were released.
  virtual int release(const std::vector<job_ref>& jobs) = 0;

  /// Returns every row that this worker holds as `running`, except the
  /// claims in `keep`, to `pending` with the attempt counted (to `failed`
  /// when its attempts are used up), recording `reason` in `errors`;
  /// returns how many rows were moved. A restarted dispatcher calls it for
  /// the claims its predecessor took down with it, which would otherwise
  /// sit `running` until their lease expired. Other workers' rows are
  /// never touched.
  virtual int requeue_orphans(const std::vector<job_ref>& keep,
                              const std::string& reason) = 0;

  /// How long until the earliest pending row becomes runnable (zero when
  /// one already is); empty when no row is pending. `--exit-when-idle`
  /// uses it so that a drain also waits for the retries it scheduled.
  virtual std::optional<std::chrono::milliseconds> next_pending_delay() = 0;
};

}  // namespace imagen
