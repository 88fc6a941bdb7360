// Structured logging: one line per event, a fixed event name and key=value
// fields, rendered as text or JSON on stderr through spdlog.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace imagen::log {

enum class format { text, json };

/// Chooses how lines are rendered; call once at start-up.
void set_format(format f);

/// Sets the lowest level written ("debug", "info", "warn", "error").
void set_level(std::string_view level);

/// One key=value pair of a log line. Numbers stay unquoted in JSON.
struct field {
  std::string_view key;
  std::string value;
  bool quoted = true;

  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const std::string& v) : key(k), value(v) {}
  field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {
    quoted = false;
  }
  template <class Number,
            class = std::enable_if_t<std::is_arithmetic_v<Number>>>
  field(std::string_view k, Number v) : key(k), value(std::to_string(v)) {
    quoted = false;
  }
};

using fields = std::initializer_list<field>;

void debug(std::string_view event, fields f = {});
void info(std::string_view event, fields f = {});
void warn(std::string_view event, fields f = {});
void error(std::string_view event, fields f = {});

/// Renders one line without the timestamp and level (for tests).
std::string render(format f, std::string_view event, fields values);

}  // namespace imagen::log
