// The fixture of the deterministic actor tests: CAF's test coordinator,
// the fakes of fakes.hpp, and a configuration small enough to reason
// about (3 CPU slots, lease 60 s, poll 5 s, grace 10 s).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include <caf/all.hpp>

// CAF 0.17.6's dsl.hpp calls FAIL without defining it.
#define FAIL(msg) CAF_FAIL(msg)
#include <caf/test/dsl.hpp>

#include "actors/dispatcher.hpp"
#include "actors/listener.hpp"
#include "actors/messages.hpp"
#include "actors/pipeline_slot.hpp"
#include "actors/runtime.hpp"
#include "actors/status_writer.hpp"
#include "actors/supervisor.hpp"
#include "config/config.hpp"
#include "tests/actors/fakes.hpp"

namespace imagen::testing {

using namespace std::chrono_literals;

/// Keeps the exit reason of the actor it watches.
inline caf::behavior exit_watcher(
    caf::event_based_actor* self, caf::actor target,
    std::shared_ptr<std::optional<caf::error>> reason) {
  self->monitor(target);
  self->set_down_handler([=](caf::down_msg& down) {
    *reason = down.reason;
    self->quit();
  });
  return {[](int) {}};
}

struct actor_fixture : test_coordinator_fixture<> {
  std::shared_ptr<fake_queue_state> queue =
      std::make_shared<fake_queue_state>();
  std::shared_ptr<fake_source_state> source =
      std::make_shared<fake_source_state>();
  std::shared_ptr<fake_pipeline_state> pipe =
      std::make_shared<fake_pipeline_state>();
  config cfg;
  spawn_mode mode{false, false};
  /// Stopped when the test ends: their timers would otherwise re-arm
  /// forever in the fixture's final run().
  std::vector<caf::actor> started;

  actor_fixture() {
    cfg.pool_size = 3;
    cfg.poll_interval = 5s;
    cfg.lease = 60s;
    cfg.shutdown_grace = 10s;
    cfg.db_timeout = 5s;
    cfg.restart_intensity = 2;
    cfg.restart_period = 60s;
  }

  ~actor_fixture() {
    for (auto& a : started)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  queue_factory queues() {
    return [q = queue] { return std::make_unique<fake_queue>(q); };
  }

  notification_factory sources() {
    return [s = source] { return std::make_unique<fake_source>(s); };
  }

  pipeline_factory pipelines() {
    return [p = pipe](int) { return std::make_unique<fake_pipeline>(p); };
  }

  runtime_parts parts() { return {queues(), sources(), pipelines()}; }

  caf::actor keep(caf::actor a) {
    started.push_back(a);
    return a;
  }

  caf::actor spawn_writer() { return keep(sys.spawn(status_writer, queues())); }

  caf::actor spawn_dispatcher(caf::actor writer) {
    return keep(
        sys.spawn(dispatcher, cfg, mode, queues(), pipelines(), writer));
  }

  caf::actor spawn_listener(caf::actor target) {
    return keep(sys.spawn(listener, cfg, mode, sources(), target));
  }

  caf::actor spawn_supervisor() {
    return keep(sys.spawn(supervisor, cfg, parts(), mode));
  }

  /// Returns a slot that will hold the exit reason of `target`.
  std::shared_ptr<std::optional<caf::error>> watch(caf::actor target) {
    auto reason = std::make_shared<std::optional<caf::error>>();
    sys.spawn(exit_watcher, target, reason);
    sched.run();
    return reason;
  }

  dispatcher_state& state_of_dispatcher(const caf::actor& d) {
    return deref<dispatcher_actor>(d).state;
  }

  caf::actor slot(const caf::actor& d, int index) {
    return state_of_dispatcher(d).slots[static_cast<std::size_t>(index)].handle;
  }

  void add_runnable(int count, const std::string& prefix = "job-") {
    auto first = queue->runnable.size();
    for (int i = 0; i < count; ++i)
      queue->runnable.push_back(
          make_job(prefix + std::to_string(first + i + 1)));
  }
};

}  // namespace imagen::testing
