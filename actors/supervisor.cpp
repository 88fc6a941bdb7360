#include "actors/supervisor.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include <caf/sec.hpp>

#include "actors/dispatcher.hpp"
#include "actors/listener.hpp"
#include "actors/messages.hpp"
#include "actors/status_writer.hpp"
#include "core/log.hpp"

namespace imagen {

const char* to_string(child c) {
  switch (c) {
    case child::status_writer:
      return "status_writer";
    case child::dispatcher:
      return "dispatcher";
    case child::listener:
      return "listener";
  }
  return "unknown";
}

namespace {

void start_child(supervisor_actor* self, child c) {
  auto& st = self->state;
  auto& writer = st[child::status_writer].handle;
  auto& dispatcher_handle = st[child::dispatcher].handle;
  auto& listener_handle = st[child::listener].handle;
  switch (c) {
    case child::status_writer:
      writer = spawn_child(self, st.mode, status_writer, st.parts.make_queue,
                           st.parts.sweep_scratch);
      if (dispatcher_handle)
        self->send(dispatcher_handle, writer_atom::value, writer);
      break;
    case child::dispatcher:
      dispatcher_handle =
          spawn_child(self, st.mode, dispatcher, st.cfg, st.mode,
                      st.parts.make_queue, st.parts.make_pipeline, writer);
      if (listener_handle)
        self->send(listener_handle, dispatcher_atom::value, dispatcher_handle);
      break;
    case child::listener:
      listener_handle =
          spawn_child(self, st.mode, listener, st.cfg, st.mode,
                      st.parts.make_notifications, dispatcher_handle);
      break;
  }
}

/// Stops every child that is still running and ends with `reason`.
void finish(supervisor_actor* self, caf::error reason) {
  auto& st = self->state;
  st.stopping = true;
  for (auto& rec : st.children)
    if (rec.handle)
      self->send_exit(rec.handle, caf::exit_reason::user_shutdown);
  log::info("supervisor.stop", {{"status", exit_status(reason)}});
  self->quit(std::move(reason));
}

void child_failed(supervisor_actor* self, child c, const caf::error& reason) {
  auto& st = self->state;
  auto& rec = st[c];
  auto now = self->clock().now();
  while (!rec.restarts.empty() &&
         now - rec.restarts.front() > st.cfg.restart_period)
    rec.restarts.pop_front();

  if (static_cast<int>(rec.restarts.size()) >= st.cfg.restart_intensity) {
    log::error("supervisor.give_up",
               {{"child", to_string(c)},
                {"restarts", rec.restarts.size()},
                {"period_ms", st.cfg.restart_period.count()},
                {"error", describe(reason)}});
    finish(self,
           caf::make_error(
               caf::sec::runtime_error,
               std::string(to_string(c)) + " restarted more than " +
                   std::to_string(st.cfg.restart_intensity) + " times in " +
                   std::to_string(st.cfg.restart_period.count()) + " ms"));
    return;
  }

  rec.restarts.push_back(now);
  auto delay = restart_backoff_base;
  for (std::size_t i = 1; i < rec.restarts.size(); ++i)
    delay = std::min(delay * 2, restart_backoff_cap);
  log::warn("child.failed", {{"child", to_string(c)},
                             {"error", describe(reason)},
                             {"restart_ms", delay.count()}});
  self->delayed_send(self, delay, restart_atom::value, static_cast<int>(c));
}

void child_down(supervisor_actor* self, const caf::down_msg& down) {
  auto& st = self->state;
  auto it = std::find_if(
      st.children.begin(), st.children.end(), [&](const child_record& rec) {
        return rec.handle && rec.handle.address() == down.source;
      });
  if (it == st.children.end())
    return;
  auto c = static_cast<child>(it - st.children.begin());
  it->handle = nullptr;

  // The dispatcher ends the worker: drained, idle, or given up.
  if (c == child::dispatcher &&
      (st.stopping || exit_status(down.reason) == 0)) {
    finish(self, down.reason);
    return;
  }
  if (st.stopping && c == child::listener)
    return;
  child_failed(self, c, down.reason);
}

void shutdown(supervisor_actor* self) {
  auto& st = self->state;
  ++st.signals;
  auto& dispatcher_handle = st[child::dispatcher].handle;
  if (st.signals > 1) {
    log::warn("worker.stop_now", {});
    if (dispatcher_handle)
      self->send(dispatcher_handle, shutdown_atom::value, std::int64_t{0});
    return;
  }

  st.stopping = true;
  log::info("worker.stopping", {{"grace_ms", st.cfg.shutdown_grace.count()}});
  auto& listener_handle = st[child::listener].handle;
  if (listener_handle)
    self->send_exit(listener_handle, caf::exit_reason::user_shutdown);
  if (!dispatcher_handle) {
    // The dispatcher failed and waits for its restart. Its claims are
    // still `running`: start a new one now, whose only work is to give
    // them back before it drains (nothing) and ends.
    start_child(self, child::dispatcher);
  }
  self->send(dispatcher_handle, shutdown_atom::value,
             static_cast<std::int64_t>(st.cfg.shutdown_grace.count()));
}

}  // namespace

caf::behavior supervisor(supervisor_actor* self, config cfg,
                         runtime_parts parts, spawn_mode mode) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.parts = std::move(parts);
  st.mode = mode;
  self->set_down_handler([=](caf::down_msg& down) { child_down(self, down); });
  // Children are monitored, not linked: whoever stops the supervisor
  // stops them through it.
  self->set_exit_handler(
      [=](caf::exit_msg& msg) { finish(self, std::move(msg.reason)); });
  start_child(self, child::status_writer);
  start_child(self, child::dispatcher);
  start_child(self, child::listener);

  return {
      [=](shutdown_atom) { shutdown(self); },
      [=](restart_atom, int which) {
        auto c = static_cast<child>(which);
        // While stopping, only the status writer is still needed.
        if (self->state.stopping && c != child::status_writer)
          return;
        start_child(self, c);
      },
  };
}

}  // namespace imagen
