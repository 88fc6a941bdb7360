#include "actors/dispatcher.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include <caf/sec.hpp>
#include <caf/send.hpp>

#include "actors/fault_injection.hpp"
#include "actors/messages.hpp"
#include "actors/pipeline_slot.hpp"
#include "core/log.hpp"

namespace imagen {

using std::chrono::milliseconds;

/// Why a row went back to `pending` without an outcome (in its errors).
constexpr const char* orphan_reason =
    "worker's dispatcher restarted: the claim was abandoned";

dispatcher_state::~dispatcher_state() {
  // Outcomes held back for a claim that will not run now.
  for (const auto& key : held_outcomes) {
    auto it = claims.find(key);
    if (writer && it != claims.end() && it->second.result)
      caf::anon_send(writer, outcome_atom::value, *it->second.result,
                     it->second.claimed.max_attempts);
  }
  for (auto& slot : slots) {
    if (slot.cancel)
      slot.cancel->store(true);
    if (slot.handle)
      caf::anon_send_exit(slot.handle, caf::exit_reason::user_shutdown);
  }
}

namespace {

int idle_count(const dispatcher_state& st) {
  return static_cast<int>(
      std::count_if(st.slots.begin(), st.slots.end(),
                    [](const slot_record& s) { return !s.running; }));
}

int busy_count(const dispatcher_state& st) {
  return static_cast<int>(st.slots.size()) - idle_count(st);
}

void spawn_slot(dispatcher_actor* self, int index) {
  auto& slot = self->state.slots[static_cast<std::size_t>(index)];
  slot.cancel = std::make_shared<std::atomic<bool>>(false);
  slot.running.reset();
  slot.handle = spawn_child(self, self->state.mode, pipeline_slot, index,
                            slot.gpu, slot.cancel, self->state.make_pipeline,
                            caf::actor_cast<caf::actor>(self));
}

void request_claim(dispatcher_actor* self) {
  auto& st = self->state;
  if (st.stopping || st.claim_scheduled)
    return;
  st.claim_scheduled = true;
  st.claim_queued = true;
  self->send(self, claim_atom::value);
}

void send_outcome(dispatcher_actor* self, const claim_record& record) {
  auto& st = self->state;
  if (st.writer && record.result)
    self->send(st.writer, outcome_atom::value, *record.result,
               record.claimed.max_attempts);
}

void release_held_outcomes(dispatcher_actor* self) {
  auto& st = self->state;
  for (const auto& key : std::exchange(st.held_outcomes, {})) {
    auto it = st.claims.find(key);
    if (it != st.claims.end())
      send_outcome(self, it->second);
  }
}

/// With exit_when_idle, the worker is done once a claim found nothing,
/// no job runs and every outcome is written.
void stop_if_idle(dispatcher_actor* self) {
  auto& st = self->state;
  if (!st.cfg.exit_when_idle || st.stopping || !st.last_claim_empty ||
      busy_count(st) > 0 || !st.claims.empty())
    return;
  log::info("worker.idle", {});
  self->quit();
}

/// During shutdown, the dispatcher is done once no job runs and every
/// outcome is written.
void stop_if_drained(dispatcher_actor* self) {
  auto& st = self->state;
  if (!st.stopping || busy_count(st) > 0 || !st.claims.empty())
    return;
  log::info("worker.drained", {});
  self->quit();
}

void start_job(dispatcher_actor* self, slot_record& slot, job j) {
  auto& st = self->state;
  slot.running = j;
  // A slot whose previous job lost its lease was cancelled; this job is
  // a new one. (The flag is only set while the slot runs a job, and the
  // slot is idle here.)
  slot.cancel->store(false);
  st.claims[{j.id, j.attempt}] = claim_record{j, std::nullopt, false};
  log::debug("job.claimed", {{"job", j.id}, {"attempt", j.attempt}});
  self->send(slot.handle, run_atom::value, std::move(j));
}

/// With exit_when_idle, an empty claim ends the run only when no row is
/// pending at all: a retry scheduled for later is part of the drain. Asks
/// again when the earliest one is due (at most a poll interval later, so
/// a row that goes away meanwhile is noticed). Returns true when the run
/// may end.
bool wait_for_retries(dispatcher_actor* self) {
  auto& st = self->state;
  std::optional<milliseconds> due;
  try {
    due = st.queue->next_pending_delay();
  } catch (const queue_error& e) {
    if (!e.transient())
      throw;
    log::warn("claim.pending_check_failed", {{"error", e.what()}});
    due = claim_retry_base;
  }
  if (!due)
    return true;
  st.last_claim_empty = false;
  auto delay = std::clamp(*due, milliseconds{1}, st.cfg.poll_interval);
  log::debug("worker.waiting_for_retries", {{"due_ms", due->count()}});
  st.claim_scheduled = true;
  self->delayed_send(self, delay, claim_atom::value);
  return false;
}

/// Gives back what this worker holds but no longer knows: the claims of a
/// dispatcher that failed. Throws queue_error like a claim.
void requeue_orphans(dispatcher_actor* self) {
  auto& st = self->state;
  std::vector<job_ref> keep;
  for (const auto& [key, record] : st.claims)
    keep.push_back(ref_of(record.claimed));
  auto moved = st.queue->requeue_orphans(keep, orphan_reason);
  st.orphans_requeued = true;
  if (moved > 0)
    log::warn("jobs.requeued_orphans", {{"jobs", moved}});
}

/// Returns the rows of any worker whose lease expired to the queue; throws
/// queue_error.
void rescue_expired_now(dispatcher_actor* self) {
  auto& st = self->state;
  auto moved = st.queue->rescue_expired(st.cfg.lease);
  if (moved > 0)
    log::info("jobs.rescued", {{"jobs", moved}});
}

void claim(dispatcher_actor* self) {
  auto& st = self->state;
  st.claim_scheduled = false;
  st.claim_queued = false;
  // However the claim ends, the outcomes it held back go to the writer.
  struct release_on_exit {
    dispatcher_actor* self;
    ~release_on_exit() { release_held_outcomes(self); }
  } release{self};
  if (st.stopping)
    return;
  auto idle = idle_count(st);
  if (idle == 0)
    return;

  using clock = std::chrono::steady_clock;
  std::vector<job> batch;
  clock::time_point answered;
  clock::duration took{};
  try {
    if (!st.orphans_requeued)
      requeue_orphans(self);
    if (!st.startup_rescue_done) {
      rescue_expired_now(self);
      st.startup_rescue_done = true;
    }
    auto asked = clock::now();
    batch = st.queue->claim_batch(idle);
    answered = clock::now();
    took = answered - asked;
  } catch (const queue_error& e) {
    if (!e.transient())
      throw;
    st.claim_backoff = st.claim_backoff.count() == 0
                           ? claim_retry_base
                           : std::min(st.claim_backoff * 2, claim_retry_cap);
    log::warn("claim.failed",
              {{"error", e.what()}, {"retry_ms", st.claim_backoff.count()}});
    // Wakes that arrive meanwhile fold into this retry.
    st.claim_scheduled = true;
    self->delayed_send(self, st.claim_backoff, claim_atom::value);
    return;
  }
  st.claim_backoff = milliseconds{0};

  auto claimed = static_cast<int>(batch.size());
  st.last_claim_full = claimed >= idle;
  st.last_claim_empty = batch.empty();
  auto next = batch.begin();
  for (auto& slot : st.slots) {
    if (next == batch.end())
      break;
    if (!slot.running)
      start_job(self, slot, std::move(*next++));
  }
  // Every claim, empty ones too: tools/bench counts them in a NOTIFY storm,
  // and splits a slot's idle time with the claim's round trip (us) and the
  // time since its answer, spent handing out the jobs (hand_us).
  auto micros = [](clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  };
  log::debug("claim.batch", {{"jobs", claimed},
                             {"limit", idle},
                             {"us", micros(took)},
                             {"hand_us", micros(clock::now() - answered)}});
  if (st.last_claim_empty && st.cfg.exit_when_idle && !wait_for_retries(self))
    return;
  stop_if_idle(self);
}

/// Keeps the outcome until it is written and hands it to the writer;
/// with `after_claim`, once the claim about to run is done.
void record_outcome(dispatcher_actor* self, outcome result,
                    bool after_claim = false) {
  auto& st = self->state;
  auto it = st.claims.find({result.job.id, result.job.attempt});
  if (it == st.claims.end()) {
    log::error("job.unknown_outcome",
               {{"job", result.job.id}, {"attempt", result.job.attempt}});
    return;
  }
  it->second.result = std::move(result);
  // A claim is about to run (this slot's, or one a wake asked for that
  // will fill this slot too): the slot waits for it, the write can wait
  // for it as well instead of competing with it for PostgreSQL (and for
  // this machine's cores). tools/bench, slot gap.
  if (after_claim && st.claim_queued)
    st.held_outcomes.push_back(it->first);
  else
    send_outcome(self, it->second);
}

void slot_done(dispatcher_actor* self, int index, outcome result) {
  auto& st = self->state;
  if (index < 0 || index >= static_cast<int>(st.slots.size()))
    return;
  st.slots[static_cast<std::size_t>(index)].running.reset();
  // A full batch means more may be waiting; with exit_when_idle, an
  // empty claim is what tells the worker that it is done.
  if (st.last_claim_full || st.cfg.exit_when_idle)
    request_claim(self);
  record_outcome(self, std::move(result), true);
  stop_if_drained(self);
}

void claims_written(dispatcher_actor* self, const std::vector<job_ref>& refs) {
  auto& st = self->state;
  for (const auto& ref : refs) {
    st.claims.erase({ref.id, ref.attempt});
  }
  stop_if_drained(self);
  // A written failure may have put a row back to `pending` for a retry:
  // look again before an idle run ends.
  if (st.cfg.exit_when_idle && st.last_claim_empty)
    request_claim(self);
}

void heartbeat(dispatcher_actor* self) {
  auto& st = self->state;
  std::vector<job_ref> refs;
  for (const auto& [key, claim] : st.claims)
    if (!claim.lost)
      refs.push_back(ref_of(claim.claimed));
  if (refs.empty())
    return;
  try {
    for (const auto& ref : st.queue->heartbeat(refs)) {
      auto it = st.claims.find({ref.id, ref.attempt});
      if (it == st.claims.end())
        continue;
      it->second.lost = true;
      // The slot has reported: the outcome is with the status writer, and
      // a row it has written is no longer running. Its answer says
      // whether the lease was lost; saying so here too would be wrong
      // for every job that just finished.
      if (it->second.result)
        continue;
      // Someone else owns the row now (a rescue, or the application
      // cancelled it): stop spending the slot, and the GPU, on it. Its
      // outcome will be fenced out either way.
      bool stopped = false;
      for (auto& slot : st.slots) {
        if (slot.running && slot.running->id == ref.id &&
            slot.running->attempt == ref.attempt) {
          slot.cancel->store(true);
          stopped = true;
        }
      }
      log::warn("job.lost_lease", {{"job", ref.id},
                                   {"attempt", ref.attempt},
                                   {"seen_by", "heartbeat"},
                                   {"cancelled", stopped}});
    }
  } catch (const queue_error& e) {
    // The next heartbeat comes at lease / 3; two may fail before the
    // lease runs out.
    log::warn("heartbeat.failed", {{"error", e.what()}, {"jobs", refs.size()}});
  }
}

milliseconds rescue_delay(dispatcher_state& st) {
  auto half = st.cfg.lease / 2;
  auto spread = std::max<std::int64_t>(half.count() / 10, 1);
  std::uniform_int_distribution<std::int64_t> offset(-spread, spread);
  return half + milliseconds(offset(st.rng));
}

void rescue(dispatcher_actor* self) {
  auto& st = self->state;
  if (st.stopping)
    return;
  try {
    rescue_expired_now(self);
  } catch (const queue_error& e) {
    log::warn("rescue.failed", {{"error", e.what()}});
  }
  self->delayed_send(self, rescue_delay(st), rescue_atom::value);
}

void cancel_running(dispatcher_actor* self) {
  auto& st = self->state;
  if (st.grace_over)
    return;
  st.grace_over = true;
  auto busy = busy_count(st);
  if (busy > 0)
    log::warn("worker.cancel", {{"jobs", busy}});
  for (auto& slot : st.slots)
    if (slot.running)
      slot.cancel->store(true);
  self->delayed_send(self, st.cfg.db_timeout, give_up_atom::value);
}

void begin_shutdown(dispatcher_actor* self, milliseconds grace) {
  auto& st = self->state;
  // A dispatcher started (or restarted) just before the shutdown has not
  // claimed yet; the rows its predecessor held must not wait for their
  // lease either. Once, and without retrying: the lease is the fallback.
  if (!st.orphans_requeued) {
    try {
      requeue_orphans(self);
    } catch (const queue_error& e) {
      st.orphans_requeued = true;
      log::warn("jobs.requeue_failed", {{"error", e.what()}});
    }
  }
  if (!st.stopping) {
    st.stopping = true;
    log::info("worker.draining", {{"jobs", busy_count(st)},
                                  {"unwritten", st.claims.size()},
                                  {"grace_ms", grace.count()}});
  }
  if (grace.count() <= 0)
    cancel_running(self);
  else
    self->delayed_send(self, grace, grace_atom::value);
  stop_if_drained(self);
}

void slot_died(dispatcher_actor* self, const caf::down_msg& down) {
  auto& st = self->state;
  auto it =
      std::find_if(st.slots.begin(), st.slots.end(), [&](const slot_record& s) {
        return s.handle && s.handle.address() == down.source;
      });
  if (it == st.slots.end())
    return;
  auto index = static_cast<int>(it - st.slots.begin());
  auto reason = describe(down.reason);
  log::warn("slot.crashed", {{"slot", index}, {"error", reason}});

  if (it->running) {
    auto crashed = failure(*it->running, failure_kind::slot_crash,
                           "pipeline slot crashed: " + reason);
    it->running.reset();
    record_outcome(self, std::move(crashed));
  }

  auto now = self->clock().now();
  while (!st.slot_restarts.empty() &&
         now - st.slot_restarts.front() > st.cfg.restart_period)
    st.slot_restarts.pop_front();
  if (static_cast<int>(st.slot_restarts.size()) >= st.cfg.restart_intensity) {
    it->handle = nullptr;
    log::error("slot.restart_limit",
               {{"restarts", st.slot_restarts.size()},
                {"period_ms", st.cfg.restart_period.count()}});
    self->quit(caf::make_error(
        caf::sec::runtime_error,
        "pipeline slots restarted more than " +
            std::to_string(st.cfg.restart_intensity) + " times in " +
            std::to_string(st.cfg.restart_period.count()) + " ms"));
    return;
  }
  st.slot_restarts.push_back(now);
  spawn_slot(self, index);
  request_claim(self);
  stop_if_drained(self);
}

}  // namespace

caf::behavior dispatcher(dispatcher_actor* self, config cfg, spawn_mode mode,
                         queue_factory make_queue,
                         pipeline_factory make_pipeline, caf::actor writer) {
  auto& st = self->state;
  self->set_exception_handler(exception_reason);
  st.cfg = std::move(cfg);
  st.mode = mode;
  st.make_pipeline = std::move(make_pipeline);
  st.writer = std::move(writer);
  st.queue = make_queue();
  st.slots.resize(static_cast<std::size_t>(st.cfg.slot_count()));
  for (int i = 0; i < st.cfg.slot_count(); ++i) {
    st.slots[static_cast<std::size_t>(i)].gpu = st.cfg.slot_gpu(i);
    spawn_slot(self, i);
  }
  self->set_down_handler([=](caf::down_msg& down) { slot_died(self, down); });

  self->delayed_send(self, st.cfg.lease / 3, heartbeat_atom::value);
  self->delayed_send(self, rescue_delay(st), rescue_atom::value);
  // A new dispatcher looks at the queue at once rather than waiting for
  // the listener's next tick.
  request_claim(self);

  return {
      [=](wake_atom) { request_claim(self); },
      [=](claim_atom) { claim(self); },
      [=](done_atom, int slot, outcome& result) {
        crash_point(crash_site::dispatcher);
        slot_done(self, slot, std::move(result));
      },
      [=](written_atom, const std::vector<job_ref>& refs) {
        claims_written(self, refs);
      },
      [=](heartbeat_atom) {
        heartbeat(self);
        self->delayed_send(self, self->state.cfg.lease / 3,
                           heartbeat_atom::value);
      },
      [=](rescue_atom) { rescue(self); },
      [=](writer_atom, caf::actor replacement) {
        auto& state = self->state;
        state.writer = std::move(replacement);
        // Every unconfirmed outcome goes now, the held ones too.
        state.held_outcomes.clear();
        // The new writer starts empty: give it every outcome that the old
        // one had not confirmed.
        int resent = 0;
        for (const auto& [key, claim] : state.claims) {
          if (!claim.result || !state.writer)
            continue;
          self->send(state.writer, outcome_atom::value, *claim.result,
                     claim.claimed.max_attempts);
          ++resent;
        }
        log::info("writer.replaced", {{"resent", resent}});
      },
      [=](shutdown_atom, std::int64_t grace_ms) {
        begin_shutdown(self, milliseconds(grace_ms));
      },
      [=](grace_atom) { cancel_running(self); },
      [=](give_up_atom) {
        auto unwritten = self->state.claims.size();
        log::error("worker.shutdown_incomplete", {{"unwritten", unwritten}});
        self->quit(caf::make_error(
            caf::sec::runtime_error,
            std::to_string(unwritten) +
                " outcomes were not written before the shutdown deadline"));
      },
  };
}

}  // namespace imagen
