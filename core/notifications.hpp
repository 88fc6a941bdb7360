// The source of wake-ups for the listener: LISTEN on a connection of its
// own, reconnecting by itself when the connection breaks.
#pragma once

#include <chrono>

namespace imagen {

enum class wake_reason {
  none,         // the wait ended without news
  notified,     // at least one NOTIFY arrived (several are coalesced)
  reconnected,  // a new connection is listening; notifications may be lost
};

const char* to_string(wake_reason reason);

class notification_source {
 public:
  virtual ~notification_source() = default;

  /// Waits at most `max_wait` for a notification. Reconnects (with backoff)
  /// when the connection is lost; never throws, never blocks much longer
  /// than `max_wait`.
  virtual wake_reason wait(std::chrono::milliseconds max_wait) = 0;
};

}  // namespace imagen
