#include "core/null_backend.hpp"

#include <algorithm>
#include <thread>

#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "core/png.hpp"
#include "core/sha256.hpp"

namespace imagen {

namespace {

constexpr int side = 8;

/// How often a sleeping null backend looks at the cancel flag.
constexpr std::chrono::milliseconds cancel_check{20};

/// The end of a delay that is waited for awake, yielding the core: a
/// sleeping thread wakes late by the kernel's timer slack (50 us unless
/// set) and by the time its core takes to wake (tens of microseconds in a
/// virtual machine). The null backend stands for a GPU job of a given
/// length, and tools/bench counts whatever it runs beyond that length as
/// idle slot time. Measured on the 2-core development machine with 50 ms
/// jobs: 50.12 to 50.14 ms on the slot with plain sleeps, 50.07 ms with
/// the slack at its least, 50.04 ms with this tail as well (the rest is
/// the slot storing the image and logging).
constexpr std::chrono::microseconds awake_tail{150};

/// Sets the calling thread's timer slack to its least (1 ns) for its
/// lifetime and puts the previous one back after, however the wait ends.
/// Linux only; elsewhere it does nothing.
#ifdef __linux__
class least_timer_slack {
 public:
  least_timer_slack() {
    int previous = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (previous > 1 && prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) == 0)
      previous_ = static_cast<unsigned long>(previous);
  }
  ~least_timer_slack() {
    if (previous_ != 0)
      prctl(PR_SET_TIMERSLACK, previous_, 0, 0, 0);
  }
  least_timer_slack(const least_timer_slack&) = delete;
  least_timer_slack& operator=(const least_timer_slack&) = delete;

 private:
  unsigned long previous_ = 0;
};
#else
struct least_timer_slack {};
#endif

/// The one image every null job returns, encoded and hashed once.
const generation& fixed_image() {
  static const generation image = [] {
    std::vector<std::uint8_t> rgb(side * side * 3);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        auto* p = &rgb[static_cast<std::size_t>((y * side + x) * 3)];
        p[0] = static_cast<std::uint8_t>(x * 32);
        p[1] = static_cast<std::uint8_t>(y * 32);
        p[2] = 160;
      }
    generation g;
    g.png = encode_png(side, side, rgb);
    g.width = side;
    g.height = side;
    g.sha256 = sha256_hex(g.png.data(), g.png.size());
    g.size_verified = true;
    return g;
  }();
  return image;
}

}  // namespace

null_backend::null_backend(std::chrono::milliseconds delay) : delay_(delay) {
  fixed_image();
}

generation null_backend::generate(
    const job&, const slot_context& where,
    std::chrono::steady_clock::time_point deadline) {
  using clock = std::chrono::steady_clock;
  if (delay_.count() == 0)
    return fixed_image();
  [[maybe_unused]] least_timer_slack precise;
  // Every step sleeps to an absolute point, so the lateness of one wake-up
  // is not carried into the next: the job ends once, late by a single
  // wake-up, whatever the number of cancel checks on the way. The last
  // awake_tail is waited for awake, so that the job lasts its delay.
  const auto end = clock::now() + delay_;
  const auto wake = end - awake_tail;
  auto stop_if_told = [&](clock::time_point now) {
    if (where.cancelled())
      throw backend_error(failure_kind::cancelled,
                          "null backend was cancelled by shutdown");
    if (now >= deadline)
      throw backend_error(failure_kind::timeout,
                          "null backend timed out before its delay of " +
                              std::to_string(delay_.count()) + "ms ended");
  };
  for (auto now = clock::now(); now < wake; now = clock::now()) {
    stop_if_told(now);
    std::this_thread::sleep_until(
        std::min({wake, deadline, now + cancel_check}));
  }
  for (auto now = clock::now(); now < end; now = clock::now()) {
    stop_if_told(now);
    std::this_thread::yield();
  }
  return fixed_image();
}

}  // namespace imagen
