// Versioned schema migrations of `imagen.*`.
#pragma once

#include <vector>

#include "core/pg_settings.hpp"

namespace imagen {

/// Applies pending migrations in order, in one transaction guarded by an
/// advisory lock (two processes may migrate at once). Returns the versions
/// applied, empty when the schema is up to date. Throws queue_error.
std::vector<int> migrate(const pg_settings& settings);

/// The highest version this build knows.
int latest_schema_version();

}  // namespace imagen
