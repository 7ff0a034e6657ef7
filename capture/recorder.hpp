#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string_view>

#include "capture/record.hpp"

namespace spdlog {
class logger;
namespace details {
class thread_pool;
class periodic_worker;
}  // namespace details
}  // namespace spdlog

namespace locomov::capture {

/// Where captures go and how much of them is kept.
struct recorder_settings {
  std::filesystem::path dir;              ///< capture.jsonl and its rotated files
  std::uint64_t max_bytes = 64ull << 20;  ///< size of one file at most
  std::size_t keep = 10;                  ///< rotated files kept beside the current one
  friend bool operator==(const recorder_settings& a, const recorder_settings& b) {
    return a.dir == b.dir && a.max_bytes == b.max_bytes && a.keep == b.keep;
  }
};

/// Appends records to DIR/capture.jsonl, rotated by size into
/// capture.1.jsonl ... capture.KEEP.jsonl (spdlog's rotating sink). Writes
/// are queued and done by a thread of its own, so a connection actor only
/// formats its line; when the disk falls behind by more than the queue
/// holds, the oldest queued records are dropped and counted
/// (`locomov_capture_dropped_total`) rather than stalling the connections.
/// The file is flushed every second, so `tail -f` follows the traffic.
/// Safe from any thread.
class recorder {
 public:
  /// Makes the folder and opens the file; throws std::runtime_error naming
  /// the path and the reason when it cannot.
  explicit recorder(const recorder_settings& settings);
  ~recorder();
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;

  void write(const record& r);
  /// Writes nothing more. What was queued reaches the file within a second,
  /// and surely once the recorder is destroyed.
  void stop();
  bool stopped() const { return stopped_.load(std::memory_order_relaxed); }
  const recorder_settings& settings() const { return settings_; }
  std::filesystem::path current_file() const { return settings_.dir / "capture.jsonl"; }

 private:
  void count_dropped();

  recorder_settings settings_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<spdlog::details::periodic_worker> flusher_;
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint64_t> written_{0};
  std::mutex dropped_mutex_;
  std::uint64_t dropped_seen_ = 0;
};

}  // namespace locomov::capture
