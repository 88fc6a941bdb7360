// How to reach PostgreSQL: the URL, the deadline every call gets and the
// name the connection shows in pg_stat_activity.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace imagen {

struct pg_settings {
  /// A URL or key=value conninfo; empty means libpq's defaults (PGHOST...).
  std::string url;
  /// Upper bound of every call, connecting included.
  std::chrono::milliseconds deadline{10000};
  std::string application_name = "imagen-worker";
};

/// Returns `url` with any password replaced by `***`; understands both the
/// URL form (user:secret@host, ?password=secret) and key=value conninfo.
std::string redact_url(const std::string& url);

/// Returns `message` (from libpq, or about `url`) with every trace of the
/// password of `url` masked: the URL quoted whole, the password as written
/// or decoded, and the pieces of it that a failed parse may quote.
std::string scrub_secrets(const std::string& url, std::string message);

/// Why libpq cannot read `url` as a URL or key=value conninfo (its own
/// words, with any password masked); empty when it can, and for text
/// that libpq takes for a plain database name (no "=", no scheme). Only the
/// syntax and the keywords are checked here: values such as a port number or an
/// sslmode are judged when connecting.
std::optional<std::string> conninfo_problem(const std::string& url);

}  // namespace imagen
