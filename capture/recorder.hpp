#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "capture/record.hpp"

namespace spdlog::sinks {
class sink;
}  // namespace spdlog::sinks

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
/// capture.1.jsonl ... capture.KEEP.jsonl (spdlog's rotating sink). A
/// connection actor only formats its line and appends it to a buffer; a
/// thread of its own writes the buffer out when it holds 256 KiB, and at
/// least every 200 ms, so `tail -f` follows the traffic and a busy fleet
/// costs one write(2) per buffer, not per record. When the disk falls
/// behind by more than the buffer's limit (8 MiB), new records are dropped
/// and counted (`locomov_capture_dropped_total`) rather than stalling the
/// connections. Safe from any thread.
class recorder {
 public:
  /// Makes the folder and opens the file; throws std::runtime_error naming
  /// the path and the reason when it cannot.
  explicit recorder(const recorder_settings& settings);
  /// Writes what is buffered, then closes the file.
  ~recorder();
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;

  void write(const record& r);
  /// Records nothing more. What was buffered reaches the file within
  /// 200 ms, and surely once the recorder is destroyed.
  void stop();
  bool stopped() const { return stopped_.load(std::memory_order_relaxed); }
  const recorder_settings& settings() const { return settings_; }
  std::filesystem::path current_file() const { return settings_.dir / "capture.jsonl"; }

 private:
  void write_out();

  recorder_settings settings_;
  std::shared_ptr<spdlog::sinks::sink> sink_;
  std::atomic<bool> stopped_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::string buffer_;   // guarded by mutex_
  bool ending_ = false;  // guarded by mutex_
  std::thread writer_;
};

}  // namespace locomov::capture
