// A pipeline slot runs one job at a time through its pipeline, on the
// device it is bound to, and reports the outcome to its dispatcher, which
// routes it to the status writer and keeps it until it is written. The
// real worker spawns slots detached: `pipeline::run` blocks for as long as
// generation takes.
//
// An exception out of the pipeline ends the slot; the dispatcher monitors
// its slots and turns that into a `slot_crash` outcome for the job.
//
// Protocol (what a slot accepts):
//   run_atom, job               run this job; reply later with done_atom
// It sends: done_atom, int slot, outcome to its dispatcher.
#pragma once

#include <atomic>
#include <memory>
#include <optional>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/wiring.hpp"
#include "core/pipeline.hpp"

namespace imagen {

struct pipeline_slot_state {
  static inline const char* name = "pipeline_slot";
  int index = 0;
  std::optional<int> gpu;
  std::unique_ptr<pipeline> runner;
  /// Owned together with the dispatcher, which sets it when the shutdown
  /// grace is over (or when it stops) while the slot is blocked in run().
  std::shared_ptr<std::atomic<bool>> cancel;
  caf::actor dispatcher;
};

using pipeline_slot_actor = caf::stateful_actor<pipeline_slot_state>;

caf::behavior pipeline_slot(pipeline_slot_actor* self, int index,
                            std::optional<int> gpu,
                            std::shared_ptr<std::atomic<bool>> cancel,
                            pipeline_factory make_pipeline,
                            caf::actor dispatcher);

}  // namespace imagen
