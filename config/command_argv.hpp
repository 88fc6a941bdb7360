// What can be known about a command backend's argv before any job runs:
// which placeholders it uses, and whether its program can be started.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace imagen {

/// The placeholders that command_backend::expand substitutes; a new one
/// there must be added here, or the configuration refuses it.
const std::vector<std::string>& command_placeholders();

/// The placeholders of one argv element, read the way
/// command_backend::expand reads it: from each '{' to the next '}'.
struct placeholder_scan {
  /// Known names found, in order ("output", "prompt").
  std::vector<std::string> known;
  /// The first `{name}` that looks like a placeholder but is none, with
  /// its braces. Braces around anything but a name (`{}`, JSON) and
  /// `${name}` (a shell variable in a `sh -c` script) stay literal in
  /// expand and are not reported.
  std::optional<std::string> unknown;
};

placeholder_scan scan_placeholders(const std::string& element);

/// Why `program` (argv[0]) cannot be started the way execvpe starts
/// it, or nothing when it can. A name without '/' is searched in
/// `path_variable`, the worker's own PATH (when unset, the C library's
/// default path, as execvp does); a name with '/' is taken as it is.
/// Either way it must be an executable regular file.
std::optional<std::string> program_problem(
    const std::string& program,
    const std::optional<std::string>& path_variable);

}  // namespace imagen
