// The listener turns every reason to look at the queue into one `wake` for
// the dispatcher: a NOTIFY, a poll tick, and every (re)connect of its
// LISTEN connection (notifications sent while it was away are gone).
//
// The blocking wait on the notification source is one message, `wait`,
// that waits at most `wait_slice` and then (in the real worker) sends
// itself the next `wait`. Between two waits the mailbox is served, so
// ticks, a new dispatcher handle and exit messages are never stuck behind
// LISTEN. The deterministic tests turn the pump off and send `wait`
// themselves, one scripted event at a time.
//
// Protocol (what the listener accepts):
//   wait_atom                   wait once on the source; wake if it had news
//   tick_atom                   the poll interval elapsed: wake, re-arm
//   dispatcher_atom, actor      send future wakes to this dispatcher
// It sends: wake_atom to the dispatcher.
#pragma once

#include <chrono>
#include <memory>
#include <random>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/wiring.hpp"
#include "config/config.hpp"
#include "core/notifications.hpp"

namespace imagen {

/// How long one `wait` may block: short enough that an exit or a tick is
/// served within a quarter second.
constexpr std::chrono::milliseconds listener_wait_slice{250};

struct listener_state {
  static inline const char* name = "listener";
  std::unique_ptr<notification_source> source;
  caf::actor dispatcher;
  std::chrono::milliseconds poll_interval{0};
  bool pump = true;
  std::minstd_rand rng{std::random_device{}()};
};

using listener_actor = caf::stateful_actor<listener_state>;

caf::behavior listener(listener_actor* self, config cfg, spawn_mode mode,
                       notification_factory make_source, caf::actor dispatcher);

}  // namespace imagen
