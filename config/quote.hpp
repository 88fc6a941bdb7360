// How a configuration error shows the value it refuses.
#pragma once

#include <string>
#include <string_view>

namespace imagen {

/// `text` in double quotes, one line and valid UTF-8 whatever it holds:
/// a quote or backslash gets a backslash, and a control character or a
/// byte that is not part of valid UTF-8 becomes \xNN, so an operator can
/// see exactly which byte was wrong.
std::string quote_value(std::string_view text);

}  // namespace imagen
