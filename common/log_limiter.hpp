#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace locomov::logs {

/// Lets one kind of log line through at most once per interval and counts
/// the lines it held back, for events a single peer can repeat at will
/// (refused connections, accept errors, deadlines). The counters in
/// common/metrics.hpp still see every event. Safe to call from any thread.
class limiter {
 public:
  using clock = std::chrono::steady_clock;

  explicit limiter(std::chrono::milliseconds interval = std::chrono::seconds(1))
      : interval_(interval) {}

  /// True when a line may be written now; `suppressed` is then how many
  /// lines were held back since the last one written.
  bool allow(std::uint64_t& suppressed) { return allow(clock::now(), suppressed); }

  /// As allow(), at time `now` (tests pass their own clock).
  bool allow(clock::time_point now, std::uint64_t& suppressed) {
    std::lock_guard lock(m_);
    if (written_ && now - last_ < interval_) {
      ++held_back_;
      return false;
    }
    written_ = true;
    last_ = now;
    suppressed = held_back_;
    held_back_ = 0;
    return true;
  }

 private:
  std::mutex m_;
  std::chrono::milliseconds interval_;
  clock::time_point last_{};
  bool written_ = false;
  std::uint64_t held_back_ = 0;
};

}  // namespace locomov::logs
