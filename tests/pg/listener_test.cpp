#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "core/pg_listener.hpp"
#include "tests/pg/pg_fixture.hpp"
#include "tests/support/process.hpp"

namespace imagen::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

class listener : public pg_test {
 protected:
  std::unique_ptr<pg_notification_source> make_source(
      const std::string& application_name) const {
    auto s = settings(seconds(2));
    s.application_name = application_name;
    return std::make_unique<pg_notification_source>(s);
  }

  /// Calls wait() until it returns `expected` or `timeout` has passed.
  static bool wait_for(notification_source& source, wake_reason expected,
                       milliseconds timeout = seconds(10)) {
    auto end = steady_clock::now() + timeout;
    while (steady_clock::now() < end) {
      if (source.wait(milliseconds(200)) == expected) {
        return true;
      }
    }
    return false;
  }
};

TEST_F(listener, FirstConnectCountsAsReconnected) {
  auto source = make_source("imagen-test-first");

  EXPECT_EQ(source->wait(seconds(5)), wake_reason::reconnected);
  EXPECT_EQ(source->wait(milliseconds(100)), wake_reason::none);
}

TEST_F(listener, AnInsertWakesIt) {
  auto source = make_source("imagen-test-insert");
  ASSERT_EQ(source->wait(seconds(5)), wake_reason::reconnected);

  add_jobs(5);

  EXPECT_EQ(source->wait(seconds(5)), wake_reason::notified);
  // Five rows in one statement are one notification, already consumed.
  EXPECT_EQ(source->wait(milliseconds(200)), wake_reason::none);
}

TEST_F(listener, RescueAndReleaseWakeIt) {
  add_jobs(2);
  auto queue = make_queue();
  auto jobs = queue->claim_batch(2);
  ASSERT_EQ(jobs.size(), 2u);
  auto source = make_source("imagen-test-rescue");
  ASSERT_EQ(source->wait(seconds(5)), wake_reason::reconnected);

  query(db.url(),
        "UPDATE imagen.jobs SET heartbeat_at = now() - interval '1 hour' "
        "WHERE id = $1",
        {jobs[0].id});
  ASSERT_EQ(queue->rescue_expired(seconds(60)), 1);
  EXPECT_EQ(source->wait(seconds(5)), wake_reason::notified);

  ASSERT_EQ(queue->release({ref_of(jobs[1])}), 1);
  EXPECT_EQ(source->wait(seconds(5)), wake_reason::notified);
}

TEST_F(listener, ATerminatedConnectionIsReplacedAndListensAgain) {
  auto source = make_source("imagen-test-terminate");
  ASSERT_EQ(source->wait(seconds(5)), wake_reason::reconnected);

  EXPECT_EQ(scalar(test_admin_url(),
                   "SELECT count(pg_terminate_backend(pid)) "
                   "FROM pg_stat_activity WHERE application_name = $1",
                   {"imagen-test-terminate"}),
            "1");

  EXPECT_TRUE(wait_for(*source, wake_reason::reconnected));
  add_jobs(1);
  EXPECT_TRUE(wait_for(*source, wake_reason::notified));
}

TEST_F(listener, AnUnreachableServerDoesNotBlockPastTheWait) {
  pg_settings s;
  s.url = "postgresql://nobody@127.0.0.1:1/none";
  s.deadline = seconds(5);
  pg_notification_source source(s);

  auto start = steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(source.wait(milliseconds(300)), wake_reason::none);
  }
  auto elapsed = steady_clock::now() - start;

  EXPECT_GE(elapsed, milliseconds(900));
  EXPECT_LT(elapsed, milliseconds(2500));
}

}  // namespace
}  // namespace imagen::test
