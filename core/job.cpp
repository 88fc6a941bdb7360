#include "core/job.hpp"

#include <utility>

namespace imagen {

const char* to_string(failure_kind kind) {
  switch (kind) {
    case failure_kind::none:
      return "none";
    case failure_kind::invalid_input:
      return "invalid_input";
    case failure_kind::backend:
      return "backend";
    case failure_kind::timeout:
      return "timeout";
    case failure_kind::storage:
      return "storage";
    case failure_kind::slot_crash:
      return "slot_crash";
    case failure_kind::cancelled:
      return "cancelled";
  }
  return "unknown";
}

outcome success(const job& j, artifact image, std::int64_t elapsed_ms) {
  outcome result;
  result.job = ref_of(j);
  result.owner_user_id = j.owner_user_id;
  result.image = std::move(image);
  result.elapsed_ms = elapsed_ms;
  return result;
}

outcome failure(const job& j, failure_kind kind, std::string error,
                std::int64_t elapsed_ms) {
  outcome result;
  result.job = ref_of(j);
  result.owner_user_id = j.owner_user_id;
  result.failure = kind;
  result.error = std::move(error);
  result.elapsed_ms = elapsed_ms;
  return result;
}

}  // namespace imagen
