#include "core/pg_listener.hpp"

#include <poll.h>
#include <algorithm>
#include <cerrno>
#include <string>
#include <thread>
#include <utility>

#include <libpq-fe.h>

#include "core/log.hpp"
#include "core/pg_connection.hpp"
#include "core/queue.hpp"
#include "core/sql.hpp"

namespace imagen {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

/// First and longest pause between two connection attempts.
constexpr milliseconds first_backoff{100};
constexpr milliseconds max_backoff{5000};

/// Silence after which a round trip checks that the server is still there:
/// a half-open connection (peer gone, no FIN) looks just like a quiet one.
constexpr milliseconds quiet_before_ping{3000};

/// A connect never takes less than this, even for a short wait, so that a
/// slow server can be reached at all.
constexpr milliseconds min_connect_time{1000};

milliseconds until(std::chrono::steady_clock::time_point t) {
  return std::max(milliseconds(0), duration_cast<milliseconds>(
                                       t - std::chrono::steady_clock::now()));
}

}  // namespace

pg_notification_source::pg_notification_source(pg_settings settings)
    : connection_(std::make_unique<pg_connection>(std::move(settings))),
      backoff_(first_backoff) {}

pg_notification_source::~pg_notification_source() = default;

bool pg_notification_source::try_connect(clock::time_point end) {
  auto budget = std::min(connection_->settings().deadline,
                         std::max(until(end), min_connect_time));
  try {
    connection_->connect(budget);
    connection_->query(sql::listen, {});
  } catch (const queue_error& e) {
    connection_->disconnect();
    next_attempt_ = clock::now() + backoff_;
    log::warn("listener.connect_failed",
              {{"error", e.what()}, {"retry_ms", backoff_.count()}});
    backoff_ = std::min(backoff_ * 2, max_backoff);
    return false;
  }
  log::info("listener.connected", {{"channel", sql::channel}});
  backoff_ = first_backoff;
  last_heard_ = clock::now();
  // Notifications that arrived with the LISTEN are covered by the
  // `reconnected` the caller returns.
  drain_notifications();
  return true;
}

void pg_notification_source::lose_connection(const char* why) {
  std::string error =
      connection_->native() != nullptr
          ? connection_->scrub(PQerrorMessage(connection_->native()))
          : "";
  while (!error.empty() && error.back() == '\n') {
    error.pop_back();
  }
  log::warn("listener.disconnected", {{"reason", why}, {"error", error}});
  connection_->disconnect();
  // The first attempt after a loss is immediate; backoff starts when it
  // fails.
  next_attempt_ = clock::now();
}

bool pg_notification_source::drain_notifications() {
  bool any = false;
  while (PGnotify* n = PQnotifies(connection_->native())) {
    any = true;
    PQfreemem(n);
  }
  return any;
}

wake_reason pg_notification_source::wait(milliseconds max_wait) {
  auto end = clock::now() + max_wait;
  for (;;) {
    if (!connection_->connected()) {
      auto now = clock::now();
      if (now < next_attempt_) {
        if (next_attempt_ >= end) {
          std::this_thread::sleep_until(end);
          return wake_reason::none;
        }
        std::this_thread::sleep_until(next_attempt_);
      }
      if (try_connect(end)) {
        return wake_reason::reconnected;
      }
      if (clock::now() >= end) {
        return wake_reason::none;
      }
      continue;
    }

    if (drain_notifications()) {
      return wake_reason::notified;
    }
    auto now = clock::now();
    if (now >= end) {
      return wake_reason::none;
    }

    auto ping_at = last_heard_ + quiet_before_ping;
    if (now >= ping_at) {
      try {
        connection_->query(sql::ping, {});
        last_heard_ = clock::now();
      } catch (const queue_error& e) {
        log::warn("listener.ping_failed", {{"error", e.what()}});
        connection_->disconnect();
        next_attempt_ = clock::now();
      }
      continue;
    }

    auto slice = until(std::min(end, ping_at));
    pollfd fd{connection_->socket(), POLLIN, 0};
    int ready = ::poll(&fd, 1, static_cast<int>(slice.count()) + 1);
    if (ready < 0 && errno != EINTR) {
      lose_connection("poll failed");
      continue;
    }
    if (ready > 0) {
      if (PQconsumeInput(connection_->native()) == 0 ||
          PQstatus(connection_->native()) != CONNECTION_OK) {
        lose_connection("connection closed");
        continue;
      }
      last_heard_ = clock::now();
    }
  }
}

}  // namespace imagen
