#include "core/pg_admin.hpp"

#include <stdexcept>
#include <string>

#include "core/pg_connection.hpp"
#include "core/sql.hpp"

namespace imagen {

std::vector<std::string> enqueue(const pg_settings& settings,
                                 const enqueue_request& request) {
  if (request.count < 1 || request.count > max_enqueue_count) {
    throw std::invalid_argument("count " + std::to_string(request.count) +
                                " is outside 1.." +
                                std::to_string(max_enqueue_count));
  }
  auto width = std::to_string(request.width);
  auto height = std::to_string(request.height);
  auto steps = std::to_string(request.steps);
  auto seed = request.seed ? std::to_string(*request.seed) : std::string();
  auto count = std::to_string(request.count);
  auto priority = std::to_string(request.priority);

  pg_connection connection(settings);
  auto rows = connection.query(
      sql::enqueue,
      {request.owner.c_str(), request.prompt.c_str(), request.backend.c_str(),
       request.model.c_str(), request.style.c_str(), width.c_str(),
       height.c_str(), steps.c_str(), request.seed ? seed.c_str() : nullptr,
       count.c_str(), priority.c_str()});

  std::vector<std::string> ids;
  ids.reserve(static_cast<std::size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    ids.push_back(rows.string(r, 0));
  }
  return ids;
}

queue_counts queue_status(const pg_settings& settings) {
  pg_connection connection(settings);
  auto rows = connection.query(sql::queue_status, {});

  queue_counts counts;
  for (int r = 0; r < rows.size(); ++r) {
    auto status = rows.string(r, 0);
    counts.by_status[status] = rows.int64(r, 1);
    if (status != "pending")
      continue;
    if (!rows.is_null(r, 2))
      counts.oldest_pending_seconds = rows.float64(r, 2);
    counts.scheduled_pending = rows.int64(r, 3);
  }
  return counts;
}

}  // namespace imagen
