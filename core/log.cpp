#include "core/log.hpp"

#include <atomic>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace imagen::log {
namespace {

std::atomic<format> current_format{format::text};

spdlog::logger& logger() {
  // stderr, unbuffered lines: the service manager adds its own timestamps
  // but a plain terminal run still wants them, so spdlog keeps its own.
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto result = std::make_shared<spdlog::logger>("imagen", sink);
    result->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v",
                        spdlog::pattern_time_type::utc);
    result->flush_on(spdlog::level::trace);
    return result;
  }();
  return *instance;
}

bool needs_quotes(std::string_view value) {
  if (value.empty())
    return true;
  for (char c : value)
    if (c == ' ' || c == '"' || c == '=' || c == '\\' ||
        static_cast<unsigned char>(c) < 0x20)
      return true;
  return false;
}

void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
}

void write(spdlog::level::level_enum level, std::string_view event,
           fields values) {
  auto& sink = logger();
  if (!sink.should_log(level))
    return;
  auto f = current_format.load();
  auto line = render(f, event, values);
  if (f == format::json)  // the pattern supplies the braces, time and level
    line = line.substr(1, line.size() - 2);
  sink.log(level, "{}", line);
}

}  // namespace

void set_format(format f) {
  current_format = f;
  if (f == format::json)
    logger().set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                         spdlog::pattern_time_type::utc);
}

void set_level(std::string_view level) {
  logger().set_level(spdlog::level::from_str(std::string{level}));
}

std::string render(format f, std::string_view event, fields values) {
  std::string out;
  if (f == format::json) {
    out += "{\"event\":\"";
    append_escaped(out, event);
    out += '"';
    for (const auto& item : values) {
      out += ",\"";
      append_escaped(out, item.key);
      out += "\":";
      if (item.quoted) {
        out += '"';
        append_escaped(out, item.value);
        out += '"';
      } else {
        out += item.value;
      }
    }
    out += '}';
    return out;
  }
  out += "event=";
  out += event;
  for (const auto& item : values) {
    out += ' ';
    out += item.key;
    out += '=';
    if (needs_quotes(item.value)) {
      out += '"';
      append_escaped(out, item.value);
      out += '"';
    } else {
      out += item.value;
    }
  }
  return out;
}

void debug(std::string_view event, fields f) {
  write(spdlog::level::debug, event, f);
}
void info(std::string_view event, fields f) {
  write(spdlog::level::info, event, f);
}
void warn(std::string_view event, fields f) {
  write(spdlog::level::warn, event, f);
}
void error(std::string_view event, fields f) {
  write(spdlog::level::err, event, f);
}

}  // namespace imagen::log
