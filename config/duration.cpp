// Durations as operators write them: a whole number and a unit.
#include <charconv>
#include <cstdint>
#include <string>

#include "config/config.hpp"
#include "config/quote.hpp"

namespace imagen {
namespace {

constexpr const char* duration_hint = "(use 250ms, 5s, 5m, 1h)";

}  // namespace

milliseconds parse_duration(const std::string& key, const std::string& text) {
  auto too_long = [&] {
    return config_error(key + ": " + quote_value(text) + " is longer than " +
                        format_duration(max_duration) +
                        " (30 days), the longest duration accepted");
  };
  auto not_a_duration = [&] {
    return config_error(key + ": " + quote_value(text) + " is not a duration " +
                        duration_hint);
  };

  std::int64_t number = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, number);
  if (ec == std::errc::result_out_of_range)
    throw too_long();
  if (ec != std::errc{} || end == first || *first == '-')
    throw not_a_duration();

  const std::string unit(end, last);
  std::int64_t factor = 0;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s")
    factor = 1000;
  else if (unit == "m")
    factor = 60 * 1000;
  else if (unit == "h")
    factor = 60 * 60 * 1000;
  else
    throw not_a_duration();

  if (number > max_duration.count() / factor)
    throw too_long();
  return milliseconds{number * factor};
}

std::string format_duration(milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % (60 * 60 * 1000) == 0)
    return std::to_string(ms / (60 * 60 * 1000)) + "h";
  if (ms != 0 && ms % (60 * 1000) == 0)
    return std::to_string(ms / (60 * 1000)) + "m";
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace imagen
