#include "actors/runtime.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "actors/messages.hpp"
#include "actors/supervisor.hpp"
#include "core/log.hpp"

namespace imagen {

namespace {

/// How often the signal thread looks whether the worker ended by itself.
constexpr long signal_poll_ns = 200L * 1000 * 1000;

std::string join(const std::vector<int>& values) {
  std::string text;
  for (auto v : values) {
    if (!text.empty())
      text += ',';
    text += std::to_string(v);
  }
  return text;
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread it starts
/// from here on, so that only the signal thread's sigtimedwait sees them;
/// puts the previous mask back when it goes.
class blocked_signals {
 public:
  blocked_signals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    // A closed terminal or a service manager's HUP would otherwise end
    // the process at once with its claims stranded: it drains instead.
    sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, &previous_);
  }
  ~blocked_signals() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  blocked_signals(const blocked_signals&) = delete;
  blocked_signals& operator=(const blocked_signals&) = delete;

  const sigset_t& set() const { return set_; }

 private:
  sigset_t set_;
  sigset_t previous_;
};

/// Forwards each SIGTERM / SIGINT / SIGHUP to the supervisor as `shutdown`
/// until `done` is set; the wait is bounded so that the thread can be joined.
void forward_signals(const sigset_t& set, const std::atomic<bool>& done,
                     caf::actor supervisor_handle) {
  timespec slice{0, signal_poll_ns};
  while (!done.load()) {
    auto sig = sigtimedwait(&set, nullptr, &slice);
    if (sig <= 0)
      continue;
    log::info("worker.signal", {{"signal", sig == SIGTERM  ? "SIGTERM"
                                           : sig == SIGINT ? "SIGINT"
                                                           : "SIGHUP"}});
    caf::anon_send(supervisor_handle, shutdown_atom::value);
  }
}

}  // namespace

int run_worker(const config& cfg, runtime_parts parts) {
  blocked_signals signals;
  log::info("worker.start", {{"slots", cfg.slot_count()},
                             {"gpus", join(cfg.gpus)},
                             {"exit_when_idle", cfg.exit_when_idle}});
  int status = 1;
  {
    caf::actor_system_config system_config;
    caf::actor_system system{system_config};
    auto top = system.spawn(supervisor, cfg, std::move(parts), spawn_mode{});

    std::atomic<bool> done{false};
    std::thread bridge(forward_signals, std::cref(signals.set()),
                       std::cref(done), top);

    caf::scoped_actor self{system};
    self->monitor(top);
    self->receive(
        [&](const caf::down_msg& down) { status = exit_status(down.reason); });

    done.store(true);
    bridge.join();
    // The supervisor has decided. The system's destructor still waits for
    // every actor; each blocking call has a deadline, but an actor that
    // leaked (a spawn that failed halfway) would hold the process for
    // ever and a service manager would never restart it. Past the margin
    // the process ends with the status already decided.
    auto margin = cfg.db_timeout + std::chrono::seconds(5);
    std::thread([margin, status] {
      std::this_thread::sleep_for(margin);
      log::error("worker.stuck",
                 {{"waited_ms", margin.count()}, {"status", status}});
      std::_Exit(status);
    }).detach();
    // The actor system's destructor waits for every actor; each blocking
    // call in them has a deadline, so this ends.
  }
  log::info("worker.stop", {{"status", status}});
  return status;
}

}  // namespace imagen
