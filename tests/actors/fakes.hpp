// In-memory stand-ins for the queue, the notification source and the
// pipeline. Each fake records what the actors asked of it in a state
// object that the test keeps, and follows a script the test sets there.
#pragma once

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/job.hpp"
#include "core/notifications.hpp"
#include "core/pipeline.hpp"
#include "core/queue.hpp"

namespace imagen::testing {

struct fake_queue_state {
  /// Runnable jobs, claimed from the front.
  std::deque<job> runnable;
  std::vector<int> claim_limits;
  /// The next claims throw a transient queue_error (a lost connection).
  int failing_claims = 0;
  /// The next claims throw a permanent queue_error: the dispatcher fails.
  int broken_claims = 0;
  /// Claims that no write, release or requeue has finished yet: the rows
  /// this worker holds as `running`.
  std::vector<job> held;
  /// Every call to write_outcomes, failed ones included.
  int write_calls = 0;
  int failing_writes = 0;
  /// The batches that were written, one entry per successful call.
  std::vector<std::vector<outcome>> writes;
  /// Writes of these job ids report lost_lease.
  std::set<std::string> foreign_rows;
  std::vector<std::vector<job_ref>> heartbeats;
  /// The next heartbeat reports these as no longer ours.
  std::vector<job_ref> lose_on_heartbeat;
  std::vector<std::chrono::milliseconds> rescues;
  std::vector<std::vector<job_ref>> releases;
  /// Every requeue_orphans call: what it was told to keep, and why.
  struct requeue_call {
    std::vector<job_ref> keep;
    std::string reason;
    std::vector<job_ref> moved;
  };
  std::vector<requeue_call> requeues;
  /// The next requeue_orphans calls throw a transient queue_error.
  int failing_requeues = 0;
  /// What next_pending_delay() answers: rows pending but not runnable yet.
  std::optional<std::chrono::milliseconds> next_pending;
  int next_pending_calls = 0;
  int queues_made = 0;

  std::size_t outcomes_written() const {
    std::size_t n = 0;
    for (const auto& batch : writes)
      n += batch.size();
    return n;
  }

  /// How many written outcomes are for the claim `ref`.
  std::size_t times_written(const job_ref& ref) const {
    std::size_t n = 0;
    for (const auto& batch : writes)
      for (const auto& o : batch)
        n += o.job == ref ? 1 : 0;
    return n;
  }

  void finish(const job_ref& ref) {
    held.erase(std::remove_if(held.begin(), held.end(),
                              [&](const job& j) { return ref_of(j) == ref; }),
               held.end());
  }
};

class fake_queue : public job_queue {
 public:
  explicit fake_queue(std::shared_ptr<fake_queue_state> state)
      : state_(std::move(state)) {
    ++state_->queues_made;
  }

  std::vector<job> claim_batch(int limit) override {
    state_->claim_limits.push_back(limit);
    if (state_->failing_claims > 0) {
      --state_->failing_claims;
      throw queue_error("connection lost while claiming", true);
    }
    if (state_->broken_claims > 0) {
      --state_->broken_claims;
      throw queue_error("relation imagen.jobs does not exist", false);
    }
    std::vector<job> batch;
    while (static_cast<int>(batch.size()) < limit &&
           !state_->runnable.empty()) {
      batch.push_back(state_->runnable.front());
      state_->runnable.pop_front();
      state_->held.push_back(batch.back());
    }
    return batch;
  }

  std::vector<write_result> write_outcomes(
      const std::vector<outcome>& outcomes) override {
    ++state_->write_calls;
    if (state_->failing_writes > 0) {
      --state_->failing_writes;
      throw queue_error("connection lost while writing", true);
    }
    state_->writes.push_back(outcomes);
    std::vector<write_result> results;
    for (const auto& o : outcomes) {
      if (state_->foreign_rows.count(o.job.id)) {
        results.push_back(write_result::lost_lease);
        continue;
      }
      results.push_back(write_result::applied);
      state_->finish(o.job);
    }
    return results;
  }

  std::vector<job_ref> heartbeat(const std::vector<job_ref>& jobs) override {
    state_->heartbeats.push_back(jobs);
    return std::exchange(state_->lose_on_heartbeat, {});
  }

  int rescue_expired(std::chrono::milliseconds lease) override {
    state_->rescues.push_back(lease);
    return 0;
  }

  int release(const std::vector<job_ref>& jobs) override {
    if (state_->failing_writes > 0) {
      --state_->failing_writes;
      throw queue_error("connection lost while releasing", true);
    }
    state_->releases.push_back(jobs);
    for (const auto& ref : jobs)
      state_->finish(ref);
    return static_cast<int>(jobs.size());
  }

  /// Puts every held claim not in `keep` back at the front of `runnable`,
  /// with the attempt its next claim will have.
  int requeue_orphans(const std::vector<job_ref>& keep,
                      const std::string& reason) override {
    if (state_->failing_requeues > 0) {
      --state_->failing_requeues;
      throw queue_error("connection lost while requeueing", true);
    }
    fake_queue_state::requeue_call call{keep, reason, {}};
    std::vector<job> still_held;
    for (auto& j : state_->held) {
      if (std::find(keep.begin(), keep.end(), ref_of(j)) != keep.end()) {
        still_held.push_back(j);
        continue;
      }
      call.moved.push_back(ref_of(j));
      ++j.attempt;
      state_->runnable.push_front(j);
    }
    state_->held = std::move(still_held);
    state_->requeues.push_back(std::move(call));
    return static_cast<int>(state_->requeues.back().moved.size());
  }

  std::optional<std::chrono::milliseconds> next_pending_delay() override {
    ++state_->next_pending_calls;
    if (!state_->runnable.empty())
      return std::chrono::milliseconds(0);
    return state_->next_pending;
  }

 private:
  std::shared_ptr<fake_queue_state> state_;
};

struct fake_source_state {
  /// What the next calls to wait() return, in order; none when empty.
  std::deque<wake_reason> script;
  int waits = 0;
};

class fake_source : public notification_source {
 public:
  explicit fake_source(std::shared_ptr<fake_source_state> state)
      : state_(std::move(state)) {}

  wake_reason wait(std::chrono::milliseconds) override {
    ++state_->waits;
    if (state_->script.empty())
      return wake_reason::none;
    auto next = state_->script.front();
    state_->script.pop_front();
    return next;
  }

 private:
  std::shared_ptr<fake_source_state> state_;
};

struct fake_pipeline_state {
  /// Every job run, with the slot that ran it.
  std::vector<std::pair<int, job>> runs;
  /// Jobs with these ids make the pipeline throw: the slot breaks.
  std::set<std::string> crash_ids;
};

/// Succeeds with an artifact named after the job, unless the job is in
/// crash_ids (throws) or the slot's cancel flag is set (cancelled).
class fake_pipeline : public pipeline {
 public:
  explicit fake_pipeline(std::shared_ptr<fake_pipeline_state> state)
      : state_(std::move(state)) {}

  outcome run(const job& j, const slot_context& where) override {
    state_->runs.emplace_back(where.slot, j);
    if (state_->crash_ids.count(j.id))
      throw std::runtime_error("backend segfaulted on " + j.id);
    if (where.cancelled())
      return failure(j, failure_kind::cancelled, "cancelled by shutdown");
    artifact image;
    image.path = "/tmp/" + j.id + ".png";
    image.uri = "file://" + image.path;
    image.sha256 = "00";
    image.bytes = 1;
    image.width = j.width;
    image.height = j.height;
    image.mime = "image/png";
    return success(j, image, 7);
  }

 private:
  std::shared_ptr<fake_pipeline_state> state_;
};

inline job make_job(const std::string& id, int attempt = 1) {
  job j;
  j.id = id;
  j.owner_user_id = "user-1";
  j.prompt = "a lighthouse at dusk";
  j.width = 64;
  j.height = 64;
  j.attempt = attempt;
  j.max_attempts = 3;
  return j;
}

}  // namespace imagen::testing
