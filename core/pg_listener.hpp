// notification_source over PostgreSQL: LISTEN imagen_jobs on a connection
// of its own.
#pragma once

#include <chrono>
#include <memory>

#include "core/notifications.hpp"
#include "core/pg_settings.hpp"

namespace imagen {

class pg_connection;

/// Not thread-safe: one owner (the listener actor).
class pg_notification_source final : public notification_source {
 public:
  explicit pg_notification_source(pg_settings settings);
  ~pg_notification_source() override;

  pg_notification_source(const pg_notification_source&) = delete;
  pg_notification_source& operator=(const pg_notification_source&) = delete;

  /// Connects on first use: the first call returns `reconnected` once the
  /// LISTEN is in place, as does the first call after any reconnect.
  wake_reason wait(std::chrono::milliseconds max_wait) override;

 private:
  using clock = std::chrono::steady_clock;

  bool try_connect(clock::time_point end);
  void lose_connection(const char* why);
  bool drain_notifications();

  std::unique_ptr<pg_connection> connection_;
  clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_;
  clock::time_point last_heard_{};
};

}  // namespace imagen
