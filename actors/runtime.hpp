// The wiring of the real worker: an actor system, the supervisor and its
// children, and the bridge from SIGTERM / SIGINT to a `shutdown` message.
#pragma once

#include <functional>
#include <memory>

#include "config/config.hpp"
#include "core/notifications.hpp"
#include "core/pipeline.hpp"
#include "core/queue.hpp"

namespace imagen {

/// What the actors are built from; each factory may be called again when
/// an actor is restarted.
struct runtime_parts {
  /// Called once per queue-owning actor (start and restart).
  std::function<std::unique_ptr<job_queue>()> make_queue;
  std::function<std::unique_ptr<notification_source>()> make_notifications;
  std::function<std::unique_ptr<pipeline>(int slot)> make_pipeline;
  /// Removes what nobody will finish from the scratch directory; the
  /// status writer calls it every scratch_sweep_interval. May be empty.
  std::function<void()> sweep_scratch;
};

/// Runs the worker until it is told to stop; returns the process exit
/// status (0 clean, 1 unrecoverable).
int run_worker(const config& cfg, runtime_parts parts);

}  // namespace imagen
