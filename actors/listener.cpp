#include "actors/listener.hpp"

#include <string>
#include <utility>

#include "actors/fault_injection.hpp"
#include "actors/messages.hpp"
#include "core/log.hpp"

namespace imagen {

namespace {

/// The poll interval with +-10% jitter, so that many workers started
/// together do not poll the database in step.
std::chrono::milliseconds jittered(std::chrono::milliseconds interval,
                                   std::minstd_rand& rng) {
  auto spread = interval.count() / 10;
  if (spread == 0)
    return interval;
  std::uniform_int_distribution<long long> offset(-spread, spread);
  return interval + std::chrono::milliseconds(offset(rng));
}

// Named here rather than with core's to_string(wake_reason), so that the
// actors do not depend on which core file defines it.
const char* reason_name(wake_reason reason) {
  switch (reason) {
    case wake_reason::none:
      return "none";
    case wake_reason::notified:
      return "notified";
    case wake_reason::reconnected:
      return "reconnected";
  }
  return "unknown";
}

void wake(listener_actor* self, const char* reason) {
  log::debug("listener.wake", {{"reason", reason}});
  if (self->state.dispatcher)
    self->send(self->state.dispatcher, wake_atom::value);
}

void arm_tick(listener_actor* self) {
  auto delay = jittered(self->state.poll_interval, self->state.rng);
  self->delayed_send(self, delay, tick_atom::value);
}

}  // namespace

caf::behavior listener(listener_actor* self, config cfg, spawn_mode mode,
                       notification_factory make_source,
                       caf::actor dispatcher) {
  auto& st = self->state;
  self->set_exception_handler(exception_reason);
  st.source = make_source();
  st.dispatcher = std::move(dispatcher);
  st.poll_interval = cfg.poll_interval;
  st.pump = mode.pump_notifications;

  // A fresh connection may have missed notifications: always look once.
  wake(self, "connected");
  arm_tick(self);
  if (st.pump)
    self->send(self, wait_atom::value);

  return {
      [=](wait_atom) {
        crash_point(crash_site::listener);
        auto reason = self->state.source->wait(listener_wait_slice);
        if (reason != wake_reason::none)
          wake(self, reason_name(reason));
        if (self->state.pump)
          self->send(self, wait_atom::value);
      },
      [=](tick_atom) {
        wake(self, "tick");
        arm_tick(self);
      },
      [=](dispatcher_atom, caf::actor replacement) {
        self->state.dispatcher = std::move(replacement);
        // The new dispatcher knows nothing yet: let it look at once.
        wake(self, "new_dispatcher");
      },
  };
}

}  // namespace imagen
