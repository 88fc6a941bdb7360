#include "actors/pipeline_slot.hpp"

#include <utility>

#include "actors/fault_injection.hpp"
#include "actors/messages.hpp"
#include "core/log.hpp"

namespace imagen {

caf::behavior pipeline_slot(pipeline_slot_actor* self, int index,
                            std::optional<int> gpu,
                            std::shared_ptr<std::atomic<bool>> cancel,
                            pipeline_factory make_pipeline,
                            caf::actor dispatcher) {
  auto& st = self->state;
  st.index = index;
  st.gpu = gpu;
  st.cancel = std::move(cancel);
  st.dispatcher = std::move(dispatcher);
  // The exception's text becomes the job's error: it says why the slot
  // broke.
  self->set_exception_handler(exception_reason);
  st.runner = make_pipeline(index);

  return {
      [=](run_atom, const job& j) {
        crash_point(crash_site::slot);
        hang_point(crash_site::slot);
        auto& state = self->state;
        slot_context where{state.index, state.gpu, state.cancel.get()};
        log::debug(
            "job.start",
            {{"job", j.id}, {"attempt", j.attempt}, {"slot", state.index}});
        auto result = state.runner->run(j, where);
        // With job.start, this gives each slot's idle gaps (tools/bench).
        log::debug("job.finished", {{"job", j.id},
                                    {"attempt", j.attempt},
                                    {"slot", state.index},
                                    {"ok", result.ok()}});
        self->send(state.dispatcher, done_atom::value, state.index,
                   std::move(result));
      },
  };
}

}  // namespace imagen
