// The supervisor starts the status writer, the dispatcher and the listener,
// monitors them and restarts the one that failed (one-for-one) after a
// backoff of 100 ms doubling to 5 s. More than `restart_intensity`
// restarts of one child within `restart_period` stop the worker with exit
// status 1, so that the service manager restarts the whole process.
//
// Handles change on restart: a new dispatcher is given to the listener,
// a new status writer to the dispatcher (which re-sends it every outcome
// not yet written, so that a writer's crash loses none).
//
// A shutdown that finds the dispatcher waiting for its restart starts it
// at once, so that the rows its predecessor held are given back before
// the worker exits rather than after their lease.
//
// The supervisor ends when the dispatcher ends: normally after a drained
// shutdown or with exit_when_idle (status 0), with an error when it gave
// up (status 1). `exit_status(reason)` of its own exit says which.
//
// Protocol (what the supervisor accepts):
//   shutdown_atom            a signal: drain (first), no grace (second)
//   restart_atom, int child  a child's backoff is over: start it again
//   down_msg (a child)       a child ended
// It sends: shutdown_atom, int64 grace_ms to the dispatcher; writer_atom
// to the dispatcher; dispatcher_atom to the listener.
#pragma once

#include <array>
#include <deque>

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/runtime.hpp"
#include "actors/wiring.hpp"
#include "config/config.hpp"

namespace imagen {

/// The children, in start order: each needs the one before it.
enum class child { status_writer = 0, dispatcher = 1, listener = 2 };

const char* to_string(child c);

/// First delay before a restart; doubles per recent restart of the child.
constexpr std::chrono::milliseconds restart_backoff_base{100};
constexpr std::chrono::milliseconds restart_backoff_cap{5000};

struct child_record {
  caf::actor handle;
  std::deque<caf::actor_clock::time_point> restarts;
};

struct supervisor_state {
  static inline const char* name = "supervisor";
  config cfg;
  runtime_parts parts;
  spawn_mode mode;
  std::array<child_record, 3> children;
  int signals = 0;
  bool stopping = false;

  child_record& operator[](child c) {
    return children[static_cast<std::size_t>(c)];
  }
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

caf::behavior supervisor(supervisor_actor* self, config cfg,
                         runtime_parts parts, spawn_mode mode);

}  // namespace imagen
