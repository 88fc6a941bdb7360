// Checks a claimed job against the limits before any backend sees it.
// A job that fails here fails for good: the row itself is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "core/job.hpp"

namespace imagen {

/// Returns the reason `j` cannot run, naming the field and the value
/// (`width 5000 exceeds the limit 4096`), or nothing when it may run.
/// `backends` are the configured backend names; an empty `j.backend`
/// means `default_backend`.
std::optional<std::string> validate(const job& j, const job_limits& limits,
                                    const std::set<std::string>& backends,
                                    const std::string& default_backend);

/// Decodes the code point that starts at byte `i` of `text` (i < size)
/// and moves `i` past it; returns nothing, leaving `i` alone, for a
/// malformed, cut-off, overlong or surrogate sequence or one above
/// U+10FFFF: the same bytes PostgreSQL refuses in a UTF-8 text column.
std::optional<std::uint32_t> next_code_point(const std::string& text,
                                             std::size_t& i);

/// Number of Unicode code points in `text`, or nothing when it is not
/// valid UTF-8.
std::optional<std::size_t> utf8_length(const std::string& text);

}  // namespace imagen
