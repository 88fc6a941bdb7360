// The status writer owns the connection that writes outcomes back. It
// buffers the outcomes that arrive together and writes them in one call:
// the first outcome into an empty buffer sends the writer a `flush`, which
// queues behind everything already in the mailbox.
//
// A failed write keeps the whole batch and retries it with backoff (100 ms
// doubling to 5 s): an outcome is never dropped while the process lives.
// Cancelled outcomes (shutdown) are released back to `pending` rather than
// written as failures, so that the attempt does not count.
//
// After a write, every sender of an outcome in the batch is told which of
// its claims are finished, so that it stops heartbeating them.
//
// It also sweeps the scratch directory every scratch_sweep_interval, when
// given a sweep: a worker that runs for months would otherwise keep, until
// its next start, the leftovers of a worker killed in the middle of a job
// that were too young to go when it started (its own predecessor's, after
// a crash and a restart). The writer is the actor that may block on I/O
// without holding up a claim.
//
// Protocol (what the status writer accepts):
//   outcome_atom, outcome, int max_attempts   write this outcome back
//   flush_atom                                write the buffer now
//   sweep_atom                                sweep (sent to itself)
// It sends: written_atom, std::vector<job_ref> to each outcome's sender.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/wiring.hpp"
#include "core/job.hpp"
#include "core/queue.hpp"

namespace imagen {

/// First delay after a failed write; doubles per failure.
constexpr std::chrono::milliseconds write_retry_base{100};
/// Most outcomes per write transaction: a long backlog is written in
/// several bounded transactions rather than one that risks the deadline.
constexpr std::size_t write_batch_max = 1024;
/// A database that is down is tried at least this often.
constexpr std::chrono::milliseconds write_retry_cap{5000};
/// How often the scratch directory is swept while the worker runs.
constexpr std::chrono::minutes scratch_sweep_interval{10};

struct buffered_outcome {
  outcome result;
  /// Decides whether a retryable failure is logged as a retry or final.
  int max_attempts = 0;
  /// Who is told once this outcome is written.
  caf::actor reply_to;
};

struct status_writer_state {
  static inline const char* name = "status_writer";
  std::unique_ptr<job_queue> queue;
  std::vector<buffered_outcome> buffer;
  /// `id/attempt` of every claim in `buffer`: a re-sent outcome is found
  /// without a scan, which at thousands of buffered outcomes dominated.
  std::unordered_set<std::string> buffered;
  /// A flush is in the mailbox or on the retry timer.
  bool flush_scheduled = false;
  std::chrono::milliseconds backoff{0};
};

using status_writer_actor = caf::stateful_actor<status_writer_state>;

/// `sweep` (may be empty) is called every scratch_sweep_interval; an
/// exception it throws is logged and the next sweep still comes.
caf::behavior status_writer(status_writer_actor* self, queue_factory make_queue,
                            std::function<void()> sweep);

}  // namespace imagen
