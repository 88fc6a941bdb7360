#include "actors/messages.hpp"

#include <caf/exit_reason.hpp>
#include <caf/message.hpp>

namespace imagen {

std::string describe(const caf::error& reason) {
  if (!reason)
    return "normal";
  const auto& context = reason.context();
  if (context.match_elements<std::string>())
    return context.get_as<std::string>(0);
  return caf::to_string(reason);
}

int exit_status(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal ? 0 : 1;
}

}  // namespace imagen
