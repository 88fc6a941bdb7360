// How actors are spawned and what they are built from. The real worker
// spawns every actor that blocks (database calls, generation, LISTEN)
// `detached`; the deterministic tests spawn the same behaviours on the test
// scheduler, so the choice travels with the actors as a value.
#pragma once

#include <functional>
#include <memory>
#include <utility>

#include <caf/actor.hpp>
#include <caf/spawn_options.hpp>

#include "core/notifications.hpp"
#include "core/pipeline.hpp"
#include "core/queue.hpp"

namespace imagen {

/// Opens a queue connection; called once per queue-owning actor start.
using queue_factory = std::function<std::unique_ptr<job_queue>()>;
/// Opens the LISTEN connection; called once per listener start.
using notification_factory =
    std::function<std::unique_ptr<notification_source>()>;
/// Builds the pipeline of one slot; called once per slot start.
using pipeline_factory = std::function<std::unique_ptr<pipeline>(int slot)>;

struct spawn_mode {
  /// Blocking actors get a thread each; false on the test scheduler.
  bool detached = true;
  /// The listener keeps calling wait() on its source; false in tests,
  /// which send `wait_atom` themselves, one wait at a time.
  bool pump_notifications = true;
};

/// Spawns a monitored child of `self` as `mode` says.
template <class Parent, class Fun, class... Ts>
caf::actor spawn_child(Parent* self, const spawn_mode& mode, Fun fun,
                       Ts&&... xs) {
  if (mode.detached)
    return self->template spawn<caf::detached + caf::monitored>(
        fun, std::forward<Ts>(xs)...);
  return self->template spawn<caf::monitored>(fun, std::forward<Ts>(xs)...);
}

}  // namespace imagen
