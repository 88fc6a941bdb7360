// Every SQL statement of the worker, in one place, by name.
#pragma once

#include "core/pg_connection.hpp"

namespace imagen::sql {}  // namespace imagen::sql
