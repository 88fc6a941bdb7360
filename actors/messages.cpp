#include "actors/messages.hpp"

#include <stdexcept>

#include <caf/exit_reason.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace imagen {

std::string describe(const caf::error& reason) {
  if (!reason)
    return "normal";
  const auto& context = reason.context();
  if (context.match_elements<std::string>())
    return context.get_as<std::string>(0);
  return caf::to_string(reason);
}

caf::error exception_reason(std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return caf::make_error(caf::sec::runtime_error, std::string(e.what()));
  } catch (...) {
    return caf::make_error(caf::sec::runtime_error,
                           std::string("unknown exception"));
  }
}

int exit_status(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal ? 0 : 1;
}

}  // namespace imagen
