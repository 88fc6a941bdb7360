// Every actor type can fail and be restarted while the queue keeps
// draining. IMAGEN_TEST_CRASH (compiled in with IMAGEN_FAULT_INJECTION,
// see actors/fault_injection.hpp) makes the real binary throw in one
// message of the dispatcher, the status writer, the listener or a
// pipeline slot; the worker must restart it, finish every row exactly
// once and exit 0 with --exit-when-idle.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

constexpr int job_count = 20;

struct crash_case {
  /// The IMAGEN_TEST_CRASH value.
  std::string plan;
  /// Log events that prove each crash happened and was recovered from.
  std::vector<std::string> expected_log;
};

std::string fault(const std::string& site) {
  return "event=fault.crash site=" + site;
}

std::string restarted(const std::string& child) {
  return "event=child.failed child=" + child;
}

/// Jobs whose `errors` hold an entry with this exact message.
std::int64_t jobs_with_error(const worker_env& env,
                             const std::string& message) {
  return std::stoll(
      scalar(env.url(),
             "SELECT count(*) FROM imagen.jobs WHERE errors @> "
             "jsonb_build_array(jsonb_build_object('message', $1::text))",
             {message}));
}

/// Runs a batch with `crash.plan` injected and checks that it drained:
/// exit 0, every row done once with its one image, each crash logged.
/// Returns the worker's output for further checks.
std::string drain_with_crash(const worker_env& env, const crash_case& crash) {
  auto ids = env.insert_jobs(job_count);
  // A lease this long cannot be what brings an abandoned row back.
  auto result = run_worker({"run", "--exit-when-idle"},
                           env.env({{"IMAGEN_TEST_CRASH", crash.plan},
                                    {"IMAGEN_WORKER_LEASE", "10m"}}),
                           seconds(90));
  const auto& out = result.all;
  if (out.find("event=fault.armed") == std::string::npos)
    ADD_FAILURE() << "no crash was armed: the worker binary must be built "
                     "with -DIMAGEN_FAULT_INJECTION=ON\n"
                  << out;

  EXPECT_EQ(result.status, 0) << out;
  for (const auto& line : crash.expected_log)
    EXPECT_NE(out.find(line), std::string::npos) << line << "\n" << out;

  EXPECT_EQ(env.count("done"), job_count) << out;
  EXPECT_EQ(env.count("running"), 0);
  EXPECT_EQ(env.count("pending"), 0);
  EXPECT_EQ(env.count("failed"), 0);
  auto images = env.images();
  EXPECT_EQ(images.size(), static_cast<std::size_t>(job_count));
  for (const auto& id : ids) {
    SCOPED_TRACE(id);
    auto job = env.job(id);
    EXPECT_EQ(job.status, "done");
    int registered = 0;
    for (const auto& image : images) {
      if (image.job_id != id)
        continue;
      ++registered;
      EXPECT_EQ(job.image_id.value_or(""), image.id);
      expect_image_matches_file(image, env.output_dir());
    }
    EXPECT_EQ(registered, 1);
  }
  return out;
}

TEST(Supervision, ACrashedDispatcherIsRestartedAndItsClaimsRunAgainAtOnce) {
  worker_env env;
  auto out =
      drain_with_crash(env, {"dispatcher:3",
                             {fault("dispatcher"), restarted("dispatcher"),
                              "event=jobs.requeued_orphans"}});

  // The outcome the crash lost was not waited for: the next dispatcher
  // gave the row back, and it ran again as the next attempt.
  EXPECT_GE(jobs_with_error(
                env, "worker's dispatcher restarted: the claim was abandoned"),
            1)
      << out;
  EXPECT_EQ(out.find("event=jobs.rescued"), std::string::npos) << out;
}

TEST(Supervision, ACrashedStatusWriterIsRestartedAndLosesNoOutcome) {
  worker_env env;
  drain_with_crash(env, {"status_writer:5",
                         {fault("status_writer"), restarted("status_writer"),
                          "event=writer.replaced"}});
}

TEST(Supervision, ACrashedListenerIsRestarted) {
  worker_env env;
  drain_with_crash(env,
                   {"listener:2", {fault("listener"), restarted("listener")}});
}

TEST(Supervision, ACrashedSlotFailsItsJobWhichIsRetried) {
  worker_env env;
  auto out = drain_with_crash(env, {"slot:4", {fault("slot"), "slot.crashed"}});

  EXPECT_EQ(jobs_with_error(env,
                            "pipeline slot crashed: injected crash in slot at "
                            "message 4"),
            1)
      << out;
}

TEST(Supervision, EveryActorTypeCrashingInOneRunStillDrains) {
  worker_env env;
  drain_with_crash(
      env, {"dispatcher:3,status_writer:5,listener:2,slot:4",
            {fault("dispatcher"), fault("status_writer"), fault("listener"),
             fault("slot"), restarted("dispatcher"), restarted("status_writer"),
             restarted("listener"), "slot.crashed"}});
}

}  // namespace
}  // namespace imagen::test
