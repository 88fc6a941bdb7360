#include "actors/status_writer.hpp"

#include <algorithm>
#include <exception>
#include <string>
#include <utility>

#include "actors/fault_injection.hpp"
#include "actors/messages.hpp"
#include "core/image_store.hpp"
#include "core/log.hpp"

namespace imagen {

namespace {

std::string buffer_key(const job_ref& ref) {
  return ref.id + "/" + std::to_string(ref.attempt);
}

void schedule_flush(status_writer_actor* self) {
  if (self->state.flush_scheduled)
    return;
  self->state.flush_scheduled = true;
  self->send(self, flush_atom::value);
}

void retry_later(status_writer_actor* self, const queue_error& e,
                 std::size_t pending) {
  auto& st = self->state;
  st.backoff = st.backoff.count() == 0
                   ? write_retry_base
                   : std::min(st.backoff * 2, write_retry_cap);
  // A permanent error is retried too: dropping the outcome would leave
  // the job `running` until rescue. It is logged as an error so that an
  // operator sees it.
  auto fields = {log::field("error", e.what()), log::field("outcomes", pending),
                 log::field("retry_ms", st.backoff.count())};
  if (e.transient())
    log::warn("outcomes.write_failed", fields);
  else
    log::error("outcomes.write_failed", fields);
  st.flush_scheduled = true;
  self->delayed_send(self, st.backoff, flush_atom::value);
}

void log_written(const buffered_outcome& entry, write_result result) {
  const auto& o = entry.result;
  if (result == write_result::lost_lease) {
    // Another attempt owns the row now; this attempt's file is nobody's.
    bool removed = !o.image || discard_image(*o.image);
    log::warn("job.lost_lease", {{"job", o.job.id},
                                 {"attempt", o.job.attempt},
                                 {"seen_by", "write"},
                                 {"image_removed", removed}});
    return;
  }
  if (o.ok()) {
    log::info(
        "job.done",
        {{"job", o.job.id}, {"attempt", o.job.attempt}, {"ms", o.elapsed_ms}});
    return;
  }
  bool again = is_retryable(o.failure) && o.job.attempt < entry.max_attempts;
  log::warn(again ? "job.retry" : "job.failed", {{"job", o.job.id},
                                                 {"attempt", o.job.attempt},
                                                 {"kind", to_string(o.failure)},
                                                 {"error", o.error},
                                                 {"ms", o.elapsed_ms}});
}

/// Tells every sender which of its claims are finished, one message each.
void confirm(status_writer_actor* self,
             const std::vector<buffered_outcome>& done) {
  std::vector<std::pair<caf::actor, std::vector<job_ref>>> by_sender;
  for (const auto& entry : done) {
    if (!entry.reply_to)
      continue;
    auto it =
        std::find_if(by_sender.begin(), by_sender.end(),
                     [&](const auto& p) { return p.first == entry.reply_to; });
    if (it == by_sender.end())
      it = by_sender.insert(by_sender.end(), {entry.reply_to, {}});
    it->second.push_back(entry.result.job);
  }
  for (auto& [sender, refs] : by_sender)
    self->send(sender, written_atom::value, std::move(refs));
}

/// Writes every outcome that is not a cancellation; false on a failure.
bool write_finished(status_writer_actor* self) {
  auto& st = self->state;
  auto cancelled = [](const buffered_outcome& e) {
    return e.result.failure == failure_kind::cancelled;
  };
  std::vector<buffered_outcome> batch;
  std::vector<buffered_outcome> rest;
  for (auto& entry : st.buffer)
    (cancelled(entry) || batch.size() >= write_batch_max ? rest : batch)
        .push_back(std::move(entry));
  st.buffer = std::move(rest);
  if (batch.empty())
    return true;

  std::vector<outcome> outcomes;
  for (const auto& entry : batch)
    outcomes.push_back(entry.result);
  std::vector<write_result> results;
  try {
    results = st.queue->write_outcomes(outcomes);
  } catch (const queue_error& e) {
    // The batch goes back in front, in its order.
    batch.insert(batch.end(), std::make_move_iterator(st.buffer.begin()),
                 std::make_move_iterator(st.buffer.end()));
    st.buffer = std::move(batch);
    retry_later(self, e, st.buffer.size());
    return false;
  }

  for (std::size_t i = 0; i < batch.size(); ++i) {
    log_written(batch[i],
                i < results.size() ? results[i] : write_result::applied);
    st.buffered.erase(buffer_key(batch[i].result.job));
  }
  confirm(self, batch);
  return true;
}

/// Gives cancelled claims back to `pending`; false on a failure.
bool release_cancelled(status_writer_actor* self) {
  auto& st = self->state;
  std::vector<buffered_outcome> released;
  std::vector<buffered_outcome> rest;
  for (auto& entry : st.buffer)
    (entry.result.failure == failure_kind::cancelled ? released : rest)
        .push_back(std::move(entry));
  st.buffer = std::move(rest);
  if (released.empty())
    return true;
  std::vector<job_ref> refs;
  for (const auto& entry : released)
    refs.push_back(entry.result.job);
  try {
    st.queue->release(refs);
  } catch (const queue_error& e) {
    st.buffer.insert(st.buffer.begin(),
                     std::make_move_iterator(released.begin()),
                     std::make_move_iterator(released.end()));
    retry_later(self, e, st.buffer.size());
    return false;
  }
  for (const auto& ref : refs) {
    log::info("job.released", {{"job", ref.id}, {"attempt", ref.attempt}});
    st.buffered.erase(buffer_key(ref));
  }
  confirm(self, released);
  return true;
}

}  // namespace

caf::behavior status_writer(status_writer_actor* self, queue_factory make_queue,
                            std::function<void()> sweep) {
  self->set_exception_handler(exception_reason);
  self->state.queue = make_queue();
  if (sweep)
    self->delayed_send(self, scratch_sweep_interval, sweep_atom::value);

  return {
      [=](outcome_atom, const outcome& result, int max_attempts) {
        auto& st = self->state;
        // A dispatcher re-sends what a replaced writer may have lost; one
        // copy per claim is enough.
        if (!st.buffered.insert(buffer_key(result.job)).second)
          return;
        st.buffer.push_back(buffered_outcome{
            result, max_attempts,
            caf::actor_cast<caf::actor>(self->current_sender())});
        schedule_flush(self);
      },
      [=](flush_atom) {
        crash_point(crash_site::status_writer);
        self->state.flush_scheduled = false;
        if (!write_finished(self) || !release_cancelled(self))
          return;
        self->state.backoff = std::chrono::milliseconds{0};
        // More than one batch was waiting: the rest goes next, behind
        // whatever arrived meanwhile.
        if (!self->state.buffer.empty())
          schedule_flush(self);
      },
      [=](sweep_atom) {
        try {
          sweep();
        } catch (const std::exception& e) {
          log::warn("storage.sweep_failed", {{"error", e.what()}});
        }
        self->delayed_send(self, scratch_sweep_interval, sweep_atom::value);
      },
  };
}

}  // namespace imagen
