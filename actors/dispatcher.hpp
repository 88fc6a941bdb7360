// The dispatcher owns the claiming connection and the pipeline slots. It
// claims at most as many jobs as it has idle slots, hands each to an idle
// slot, renews the leases of its claims and returns other workers' expired
// claims to the queue.
//
// Every claim stays in `claims` until the status writer confirms that its
// outcome is written: those are the leases to renew, and the outcomes to
// re-send when the status writer is replaced (a new writer starts empty).
// Outcomes travel slot -> dispatcher -> status writer for that reason.
// Claims are kept per job and attempt: after a stall longer than the
// lease, a rescue may hand this worker the next attempt of a job whose
// previous attempt has not reported yet.
// An outcome that arrives while a claim waits in the mailbox (the one
// its slot asked for, or one a wake asked for) is handed on once that
// claim has run: the slot waits for the claim, nobody waits for the
// write, and on a small host the two compete for PostgreSQL and the
// cores.
//
// Wakes coalesce: the first one sends the dispatcher one `claim`; the ones
// that arrive before it is handled are absorbed by it. A batch that came
// back full means the queue may hold more, so the next slot to go idle
// claims at once instead of waiting for the next wake.
//
// Shutdown: stop claiming and rescuing, keep heartbeating, wait for the
// jobs in flight and their writes. When the grace is over, set every busy
// slot's cancel flag; the cancelled outcomes release the claims. If the
// writes still cannot be done `db_timeout` later, stop anyway with an
// error: the leases then expire and other workers rescue the rows.
//
// A dispatcher that fails sets its slots' cancel flags so that their jobs
// stop early, and loses track of its claims. Its successor therefore
// starts by returning every row this worker holds as `running` (and does
// not know) to `pending`, with the attempt counted, before it claims
// anything (or when a shutdown comes first): the jobs run again at once
// instead of waiting for their lease to expire. On a first start that
// finds nothing.
//
// Protocol (what the dispatcher accepts):
//   wake_atom                        something may be runnable
//   claim_atom                       claim now (sent to itself)
//   done_atom, int slot, outcome     a slot finished its job
//   written_atom, vector<job_ref>    these claims are written back
//   heartbeat_atom                   renew leases (every lease / 3)
//   rescue_atom                      rescue expired rows (every lease / 2)
//   writer_atom, actor               the status writer was replaced
//   shutdown_atom, int64 grace_ms    drain; a second one may shorten grace
//   grace_atom                       the grace is over: cancel
//   give_up_atom                     the margin after the grace is over
//   down_msg (a slot)                the slot died: fail its job, respawn
// It sends: run_atom to slots, outcome_atom to the status writer.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/wiring.hpp"
#include "config/config.hpp"
#include "core/job.hpp"
#include "core/queue.hpp"

namespace imagen {

/// First delay after a failed claim; doubles per failure.
constexpr std::chrono::milliseconds claim_retry_base{100};
/// A database that is down is asked at least this often.
constexpr std::chrono::milliseconds claim_retry_cap{5000};

struct slot_record {
  caf::actor handle;
  std::optional<int> gpu;
  std::shared_ptr<std::atomic<bool>> cancel;
  /// The job the slot is running; empty while the slot is idle.
  std::optional<job> running;
};

/// A claim's job id and attempt.
using claim_key = std::pair<std::string, int>;

/// A claim whose outcome is not written yet.
struct claim_record {
  job claimed;
  /// Set once the slot reported; re-sent to a replaced status writer.
  std::optional<outcome> result;
  /// The heartbeat said the row is no longer ours: stop renewing it.
  bool lost = false;
};

struct dispatcher_state {
  static inline const char* name = "dispatcher";
  config cfg;
  spawn_mode mode;
  pipeline_factory make_pipeline;
  std::unique_ptr<job_queue> queue;
  caf::actor writer;
  std::vector<slot_record> slots;
  /// Keyed by job id and attempt. A worker usually holds one attempt of a
  /// job, but not always: when a stall outlasted a lease, a rescue may
  /// hand the same job back to this worker while the old attempt's
  /// outcome is still on its way; that outcome must still reach the
  /// writer, to be fenced out and its image removed.
  std::map<claim_key, claim_record> claims;
  /// The rows a failed predecessor held were given back (before the first
  /// claim; retried with it while the database cannot be reached).
  bool orphans_requeued = false;
  /// Expired leases of any worker were rescued before the first claim, so
  /// that a worker started after a crash (`--exit-when-idle` above all)
  /// does not wait lease / 2 to look.
  bool startup_rescue_done = false;
  bool claim_scheduled = false;
  /// A claim_atom sent with no delay waits in the mailbox.
  bool claim_queued = false;
  /// The claims whose outcomes are held back until that claim has run.
  /// A claim taken meanwhile cannot replace one of them: a job claimed
  /// again comes with its next attempt, under a key of its own.
  std::vector<claim_key> held_outcomes;
  bool last_claim_full = false;
  bool last_claim_empty = false;
  std::chrono::milliseconds claim_backoff{0};
  std::deque<caf::actor_clock::time_point> slot_restarts;
  bool stopping = false;
  bool grace_over = false;
  std::minstd_rand rng{std::random_device{}()};

  /// Stops the slots, cancelling what they run: nothing reports to a
  /// dispatcher that is gone.
  ~dispatcher_state();
};

using dispatcher_actor = caf::stateful_actor<dispatcher_state>;

caf::behavior dispatcher(dispatcher_actor* self, config cfg, spawn_mode mode,
                         queue_factory make_queue,
                         pipeline_factory make_pipeline, caf::actor writer);

}  // namespace imagen
