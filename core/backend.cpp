#include "core/backend.hpp"

namespace imagen {

resolved_size resolve_size(const job& j) {
  return resolved_size{j.width > 0 ? j.width : default_width,
                       j.height > 0 ? j.height : default_height,
                       j.steps > 0 ? j.steps : default_steps};
}

}  // namespace imagen
