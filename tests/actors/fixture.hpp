// The fixture of the deterministic actor tests: CAF's test coordinator,
// the fakes of fakes.hpp, and a configuration small enough to reason
// about (3 CPU slots, lease 60 s, poll 5 s, grace 10 s).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
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

/// Records every `written` confirmation it receives; the tests send
/// outcomes to a status writer in its name with caf::send_as.
inline caf::behavior written_recorder(
    caf::event_based_actor*,
    std::shared_ptr<std::vector<std::vector<job_ref>>> confirmed) {
  return {
      [=](written_atom, const std::vector<job_ref>& refs) {
        confirmed->push_back(refs);
      },
  };
}

/// Sends what is written to stderr (where the log goes) into a temporary
/// file while it lives, so that a test can read which events were logged.
class stderr_capture {
 public:
  stderr_capture() : file_(std::tmpfile()) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(::fileno(file_), STDERR_FILENO);
  }

  ~stderr_capture() {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    std::fclose(file_);
  }

  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;

  /// Everything written so far.
  std::string text() const {
    std::fflush(stderr);
    std::string result;
    std::rewind(file_);
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0)
      result.append(buffer, n);
    return result;
  }

 private:
  std::FILE* file_;
  int saved_ = -1;
};

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

  /// What the supervisor's status writer sweeps with (none by default).
  std::function<void()> sweep;

  runtime_parts parts() { return {queues(), sources(), pipelines(), sweep}; }

  caf::actor keep(caf::actor a) {
    started.push_back(a);
    return a;
  }

  caf::actor spawn_writer(std::function<void()> writer_sweep = {}) {
    return keep(sys.spawn(status_writer, queues(), std::move(writer_sweep)));
  }

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

  /// Runs every message except those of the `held` actors, without moving
  /// the clock: a slot that is held is a slot busy with its job.
  std::size_t run_except(const std::vector<caf::actor>& held) {
    std::vector<caf::resumable*> skip;
    for (const auto& a : held)
      skip.push_back(dynamic_cast<caf::resumable*>(
          caf::actor_cast<caf::abstract_actor*>(a)));
    return sched.run_jobs_filtered([&](caf::resumable* job) {
      return std::find(skip.begin(), skip.end(), job) == skip.end();
    });
  }

  /// Moves the clock by `d` and runs what that set off.
  void advance_and_run(caf::timespan d,
                       const std::vector<caf::actor>& held = {}) {
    advance_time(d);
    run_except(held);
  }

  /// The slots of dispatcher `d`, in index order.
  std::vector<caf::actor> slots_of(const caf::actor& d) {
    std::vector<caf::actor> result;
    for (const auto& s : state_of_dispatcher(d).slots)
      result.push_back(s.handle);
    return result;
  }

  /// Returns a slot that will hold the exit reason of `target`.
  std::shared_ptr<std::optional<caf::error>> watch(caf::actor target) {
    auto reason = std::make_shared<std::optional<caf::error>>();
    // Runs with the next run_except(); monitoring an actor that is gone
    // already still delivers its down message. Kept: an actor that
    // nobody references is gone.
    keep(sys.spawn(exit_watcher, target, reason));
    return reason;
  }

  /// The state of a dispatcher that is still running: CAF destroys an
  /// actor's state when the actor ends.
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
