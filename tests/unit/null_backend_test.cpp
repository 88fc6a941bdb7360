// null_backend: the fixed image, a delay that is never cut short, the
// cancel flag and the deadline, and the timer slack it waits with.
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "core/backend.hpp"
#include "core/null_backend.hpp"
#include "core/png.hpp"

namespace imagen {
namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

job any_job() {
  job j;
  j.id = "9d7e6a1c-2b3f-4c5d-8e9f-0a1b2c3d4e5f";
  j.prompt = "nothing in particular";
  return j;
}

TEST(null_backend, returns_the_fixed_eight_by_eight_png_at_once) {
  null_backend backend(0ms);
  auto g = backend.generate(any_job(), {}, clock::now() + 1min);
  EXPECT_EQ(g.width, 8);
  EXPECT_EQ(g.height, 8);
  EXPECT_TRUE(g.size_verified);
  EXPECT_FALSE(backend.stores_images());
  auto info = inspect_png(g.png);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->width, 8);
  EXPECT_EQ(info->height, 8);
}

TEST(null_backend, a_delayed_job_never_ends_before_its_delay) {
  null_backend backend(30ms);
  for (int i = 0; i < 5; ++i) {
    auto started = clock::now();
    backend.generate(any_job(), {}, clock::now() + 1min);
    EXPECT_GE(clock::now() - started, 30ms);
  }
}

TEST(null_backend, the_cancel_flag_stops_a_delayed_job) {
  null_backend backend(1h);
  std::atomic<bool> cancel{true};
  slot_context where;
  where.cancel = &cancel;
  try {
    backend.generate(any_job(), where, clock::now() + 2h);
    FAIL() << "a cancelled job returned an image";
  } catch (const backend_error& e) {
    EXPECT_EQ(e.kind(), failure_kind::cancelled);
  }
}

TEST(null_backend, a_cancel_while_the_job_waits_stops_it) {
  null_backend backend(1h);
  std::atomic<bool> cancel{false};
  slot_context where;
  where.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(50ms);
    cancel = true;
  });
  try {
    backend.generate(any_job(), where, clock::now() + 2h);
    ADD_FAILURE() << "a cancelled job returned an image";
  } catch (const backend_error& e) {
    EXPECT_EQ(e.kind(), failure_kind::cancelled);
  }
  canceller.join();
}

TEST(null_backend, a_deadline_before_the_delay_ends_is_a_timeout) {
  null_backend backend(1h);
  try {
    backend.generate(any_job(), {}, clock::now() + 20ms);
    FAIL() << "a job past its deadline returned an image";
  } catch (const backend_error& e) {
    EXPECT_EQ(e.kind(), failure_kind::timeout);
    EXPECT_NE(std::string(e.what()).find("3600000ms"), std::string::npos)
        << e.what();
  }
}

#ifdef __linux__
long slack_of_thread(long tid) {
  // A thread's own directory, /proc/<tid>: /proc/self/task/<tid> has no
  // timerslack_ns.
  std::ifstream in("/proc/" + std::to_string(tid) + "/timerslack_ns");
  long slack = -1;
  in >> slack;
  return slack;
}

// The delay stands for a GPU job of that length, so it is waited for with
// the least timer slack; the thread gets its own slack back afterwards.
TEST(null_backend, waits_with_the_least_timer_slack_and_puts_it_back) {
  constexpr unsigned long own_slack = 123456;
  std::atomic<long> tid{0};
  std::atomic<bool> started{false};
  bool slack_set = false;
  long slack_after = -1;
  std::thread job_thread([&] {
    slack_set = prctl(PR_SET_TIMERSLACK, own_slack, 0, 0, 0) == 0;
    tid = static_cast<long>(syscall(SYS_gettid));
    started = true;
    if (!slack_set)
      return;
    null_backend backend(400ms);
    backend.generate(any_job(), {}, clock::now() + 1min);
    slack_after = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  });
  while (!started)
    std::this_thread::yield();
  std::this_thread::sleep_for(100ms);
  auto slack_during = slack_of_thread(tid);
  job_thread.join();
  ASSERT_TRUE(slack_set);
  EXPECT_EQ(slack_during, 1);
  EXPECT_EQ(slack_after, static_cast<long>(own_slack));
}

// A job that ends early, cancelled or past its deadline, also gives the
// thread its slack back.
TEST(null_backend, a_job_that_stops_early_puts_the_timer_slack_back) {
  long before = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  ASSERT_GT(before, 1);
  null_backend backend(1h);
  std::atomic<bool> cancel{true};
  slot_context where;
  where.cancel = &cancel;
  EXPECT_THROW(backend.generate(any_job(), where, clock::now() + 2h),
               backend_error);
  EXPECT_EQ(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), before);
  EXPECT_THROW(backend.generate(any_job(), {}, clock::now() + 10ms),
               backend_error);
  EXPECT_EQ(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), before);
}
#endif

}  // namespace
}  // namespace imagen
