#include "actors/pipeline_slot.hpp"

#include <exception>
#include <string>
#include <utility>

#include <caf/sec.hpp>

#include "actors/messages.hpp"
#include "core/log.hpp"

namespace imagen {

namespace {

/// Keeps the exception's text in the exit reason, so that the job's error
/// says why the slot broke.
caf::error keep_what(std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
  } catch (...) {
    return caf::make_error(caf::sec::runtime_error,
                           std::string("unknown exception"));
  }
}

}  // namespace

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
  self->set_exception_handler(keep_what);
  st.runner = make_pipeline(index);

  return {
      [=](run_atom, const job& j) {
        auto& state = self->state;
        slot_context where{state.index, state.gpu, state.cancel.get()};
        log::debug(
            "job.start",
            {{"job", j.id}, {"attempt", j.attempt}, {"slot", state.index}});
        auto result = state.runner->run(j, where);
        self->send(state.dispatcher, done_atom::value, state.index,
                   std::move(result));
      },
  };
}

}  // namespace imagen
