// Operator commands that are not on the worker's hot path: enqueue jobs
// and count the queue.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/pg_settings.hpp"

namespace imagen {

/// Jobs to insert. Empty strings and zero sizes are stored as NULL, which
/// means "backend default".
struct enqueue_request {
  std::string owner = "cli";
  std::string prompt;
  std::string backend;
  std::string model;
  std::string style;
  int width = 0;
  int height = 0;
  int steps = 0;
  /// Row i (from 0) gets seed + i; unset gives every row its own random
  /// non-negative seed, so `count` copies of a prompt differ.
  std::optional<std::int64_t> seed;
  int count = 1;
  int priority = 0;
};

/// The most rows one enqueue call inserts.
constexpr int max_enqueue_count = 100000;

/// Inserts `count` rows in one statement; returns their ids in order.
/// Throws std::invalid_argument for a count outside 1..max_enqueue_count
/// and queue_error for a database failure.
std::vector<std::string> enqueue(const pg_settings& settings,
                                 const enqueue_request& request);

struct queue_counts {
  /// Rows per status; a status without rows is absent.
  std::map<std::string, std::int64_t> by_status;
  /// How long the pending row that is due longest has been waiting,
  /// since its run_after (database clock); empty when none is due.
  std::optional<double> oldest_pending_seconds;
  /// Pending rows whose run_after is still to come.
  std::int64_t scheduled_pending = 0;
};

/// Throws queue_error.
queue_counts queue_status(const pg_settings& settings);

}  // namespace imagen
