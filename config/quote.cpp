#include "config/quote.hpp"

#include <cstdio>

#include "core/validation.hpp"

namespace imagen {

std::string quote_value(std::string_view view) {
  const std::string text(view);
  std::string out = "\"";
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = i;
    const auto cp = next_code_point(text, i);
    if (cp && (*cp == '"' || *cp == '\\')) {
      out += '\\';
      out += static_cast<char>(*cp);
    } else if (cp && *cp >= 0x20 && *cp != 0x7f) {
      out.append(text, start, i - start);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x",
                    static_cast<unsigned char>(text[start]));
      out += escaped;
      i = start + 1;
    }
  }
  return out + '"';
}

}  // namespace imagen
