#include "actors/fault_injection.hpp"

#if IMAGEN_FAULT_INJECTION
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "core/log.hpp"
#endif

namespace imagen {

const char* to_string(crash_site site) {
  switch (site) {
    case crash_site::dispatcher:
      return "dispatcher";
    case crash_site::status_writer:
      return "status_writer";
    case crash_site::listener:
      return "listener";
    case crash_site::slot:
      return "slot";
  }
  return "unknown";
}

#if IMAGEN_FAULT_INJECTION

namespace {

constexpr const char* crash_variable = "IMAGEN_TEST_CRASH";
constexpr const char* hang_variable = "IMAGEN_TEST_HANG";
constexpr std::size_t site_count = 4;

struct crash_plan {
  /// The message number that throws, per site; 0 means never.
  std::array<long, site_count> at{};
  /// Messages seen so far, per site, over every instance of the actor.
  std::array<std::atomic<long>, site_count> seen{};
};

/// Reads one "site:N" entry into `plan`; false when it is not one.
bool parse_entry(std::string_view entry, crash_plan& plan) {
  auto colon = entry.find(':');
  if (colon == std::string_view::npos)
    return false;
  auto name = entry.substr(0, colon);
  std::string count(entry.substr(colon + 1));
  char* end = nullptr;
  long n = std::strtol(count.c_str(), &end, 10);
  if (count.empty() || *end != '\0' || n <= 0)
    return false;
  for (std::size_t i = 0; i < site_count; ++i) {
    if (name == to_string(static_cast<crash_site>(i))) {
      plan.at[i] = n;
      return true;
    }
  }
  return false;
}

/// The plan that `variable` describes, read once.
crash_plan* read_plan(const char* variable) {
  auto* result = new crash_plan;
  const char* spec = std::getenv(variable);
  if (spec == nullptr || *spec == '\0')
    return result;
  std::string_view rest(spec);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto entry = rest.substr(0, comma);
    if (!parse_entry(entry, *result))
      log::error("fault.bad_entry",
                 {{"variable", variable}, {"entry", std::string(entry)}});
    rest = comma == std::string_view::npos ? std::string_view{}
                                           : rest.substr(comma + 1);
  }
  log::warn("fault.armed", {{"variable", variable}, {"plan", spec}});
  return result;
}

crash_plan& plan() {
  static crash_plan* parsed = read_plan(crash_variable);
  return *parsed;
}

crash_plan& hang_plan() {
  static crash_plan* parsed = read_plan(hang_variable);
  return *parsed;
}

/// Counts one message at `site` in `p`; true when it is the chosen one.
bool chosen(crash_plan& p, crash_site site, long& n) {
  auto i = static_cast<std::size_t>(site);
  if (p.at[i] == 0)
    return false;
  n = p.seen[i].fetch_add(1) + 1;
  return n == p.at[i];
}

}  // namespace

void crash_point(crash_site site) {
  long n = 0;
  if (!chosen(plan(), site, n))
    return;
  log::warn("fault.crash", {{"site", to_string(site)}, {"message", n}});
  throw std::runtime_error(std::string("injected crash in ") + to_string(site) +
                           " at message " + std::to_string(n));
}

void hang_point(crash_site site) {
  long n = 0;
  if (!chosen(hang_plan(), site, n))
    return;
  log::warn("fault.hang", {{"site", to_string(site)}, {"message", n}});
  for (;;)
    std::this_thread::sleep_for(std::chrono::hours(1));
}

#endif

}  // namespace imagen
