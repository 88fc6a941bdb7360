#include "core/validation.hpp"

#include <cstdint>

namespace imagen {

namespace {

bool is_space(std::uint32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0a:
    case 0x0b:
    case 0x0c:
    case 0x0d:
    case 0x20:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
    case 0xfeff:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200b;
  }
}

std::optional<std::string> check_side(const char* field, int value,
                                      const job_limits& limits) {
  // Every job passes here: the text is built only for a side that fails.
  if (value >= 0 && value % 8 == 0 && value <= limits.max_side)
    return std::nullopt;
  std::string said = std::string(field) + " " + std::to_string(value);
  if (value < 0)
    return said + " is negative";
  if (value % 8 != 0)
    return said + " is not a multiple of 8";
  return said + " exceeds the limit " + std::to_string(limits.max_side);
}

std::optional<std::string> check_prompt(const std::string& prompt,
                                        const job_limits& limits) {
  std::size_t length = 0;
  bool blank = true;
  for (std::size_t i = 0; i < prompt.size();) {
    std::size_t at = i;
    auto cp = next_code_point(prompt, i);
    if (!cp)
      return "prompt is not valid UTF-8 (byte " + std::to_string(at) + ")";
    if (*cp == 0)
      return "prompt contains a NUL character (byte " + std::to_string(at) +
             ")";
    blank = blank && is_space(*cp);
    ++length;
  }
  if (prompt.empty())
    return std::string{"prompt is empty"};
  if (blank)
    return std::string{"prompt is blank (only whitespace)"};
  if (length > static_cast<std::size_t>(limits.max_prompt_chars))
    return "prompt length " + std::to_string(length) + " exceeds the limit " +
           std::to_string(limits.max_prompt_chars);
  return std::nullopt;
}

}  // namespace

std::optional<std::uint32_t> next_code_point(const std::string& text,
                                             std::size_t& i) {
  auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  std::uint8_t lead = byte(i);
  if (lead < 0x80) {
    ++i;
    return lead;
  }
  int extra = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if ((lead & 0xe0) == 0xc0) {
    extra = 1, cp = lead & 0x1f, min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    extra = 2, cp = lead & 0x0f, min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    extra = 3, cp = lead & 0x07, min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (i + extra >= text.size())
    return std::nullopt;
  for (int k = 1; k <= extra; ++k) {
    std::uint8_t next = byte(i + k);
    if ((next & 0xc0) != 0x80)
      return std::nullopt;
    cp = (cp << 6) | (next & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return std::nullopt;
  i += extra + 1;
  return cp;
}

std::optional<std::size_t> utf8_length(const std::string& text) {
  std::size_t length = 0;
  for (std::size_t i = 0; i < text.size(); ++length)
    if (!next_code_point(text, i))
      return std::nullopt;
  return length;
}

std::optional<std::string> validate(const job& j, const job_limits& limits,
                                    const std::set<std::string>& backends,
                                    const std::string& default_backend) {
  if (auto error = check_prompt(j.prompt, limits))
    return error;
  if (auto error = check_side("width", j.width, limits))
    return error;
  if (auto error = check_side("height", j.height, limits))
    return error;
  if (j.steps < 0)
    return "steps " + std::to_string(j.steps) + " is negative";
  if (j.steps > limits.max_steps)
    return "steps " + std::to_string(j.steps) + " exceeds the limit " +
           std::to_string(limits.max_steps);

  const std::string& name = j.backend.empty() ? default_backend : j.backend;
  if (backends.count(name) == 0) {
    std::string known;
    for (const auto& b : backends)
      known += (known.empty() ? "" : ", ") + b;
    return "unknown backend \"" + name +
           "\" (configured: " + (known.empty() ? std::string{"none"} : known) +
           ")";
  }
  return std::nullopt;
}

}  // namespace imagen
