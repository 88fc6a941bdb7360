#include "config/command_argv.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "config/quote.hpp"
#include "core/subprocess.hpp"

namespace imagen {
namespace {

bool is_name(const std::string& text) {
  auto name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  };
  return !text.empty() &&
         (std::isalpha(static_cast<unsigned char>(text[0])) ||
          text[0] == '_') &&
         std::all_of(text.begin(), text.end(), name_char);
}

/// Nothing when `path` is an executable regular file, else why not.
std::optional<std::string> not_executable(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return errno == ENOENT || errno == ENOTDIR
               ? std::string("does not exist")
               : std::string("cannot be examined: ") + std::strerror(errno);
  if (!S_ISREG(info.st_mode))
    return std::string("is not a regular file");
  if (::access(path.c_str(), X_OK) != 0)
    return std::string("is not executable");
  return std::nullopt;
}

}  // namespace

const std::vector<std::string>& command_placeholders() {
  static const std::vector<std::string> names = {
      "prompt", "negative_prompt", "width",  "height", "steps",
      "seed",   "model",           "output", "device"};
  return names;
}

placeholder_scan scan_placeholders(const std::string& element) {
  const auto& names = command_placeholders();
  placeholder_scan scan;
  std::size_t i = 0;
  while (true) {
    const auto open = element.find('{', i);
    if (open == std::string::npos)
      break;
    const auto close = element.find('}', open + 1);
    if (close == std::string::npos)
      break;
    const auto name = element.substr(open + 1, close - open - 1);
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      scan.known.push_back(name);
      i = close + 1;
      continue;
    }
    const bool shell_variable = open > 0 && element[open - 1] == '$';
    if (!scan.unknown && !shell_variable && is_name(name))
      scan.unknown = "{" + name + "}";
    i = open + 1;
  }
  return scan;
}

std::optional<std::string> program_problem(
    const std::string& program,
    const std::optional<std::string>& path_variable) {
  if (program.find('/') != std::string::npos) {
    if (auto problem = not_executable(program))
      return quote_value(program) + " " + *problem;
    return std::nullopt;
  }

  // The search the worker's spawn makes (core/subprocess).
  if (find_program(program, path_variable))
    return std::nullopt;
  const std::string search = path_variable.value_or(default_search_path());
  return quote_value(program) + " is not an executable found in PATH (" +
         (path_variable ? "PATH=" + quote_value(search)
                        : "PATH is unset: " + quote_value(search)) +
         ")";
}

}  // namespace imagen
