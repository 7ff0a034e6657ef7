#include "capture/recorder.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <stdexcept>
#include <system_error>

#include <spdlog/details/log_msg.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>

#include "common/logging.hpp"
#include "common/metrics.hpp"

namespace locomov::capture {
namespace {

/// The buffer is written out once it holds this much...
constexpr std::size_t write_at_bytes = 256 << 10;
/// ...or this long after the last write.
constexpr auto write_every = std::chrono::milliseconds(200);
/// A disk that falls this far behind loses records rather than stalling
/// the connection actors that write them.
constexpr std::size_t buffer_limit_bytes = 8 << 20;

metrics::counter& records_written() {
  static auto& c = metrics::get_counter("locomov_capture_records_total", {},
                                        "Records written to the capture file");
  return c;
}

metrics::counter& records_dropped() {
  static auto& c = metrics::get_counter(
      "locomov_capture_dropped_total", {},
      "Capture records dropped because the disk fell behind the traffic");
  return c;
}

}  // namespace

recorder::recorder(const recorder_settings& settings) : settings_(settings) {
  // What meters sent, in clear, is kept as private as the database: a
  // folder locomov makes is its own only, and so is every file in it.
  std::error_code ec;
  if (std::filesystem::create_directories(settings_.dir, ec)) {
    std::filesystem::permissions(settings_.dir, std::filesystem::perms::owner_all, ec);
  }
  if (ec) {
    throw std::runtime_error("cannot make capture folder " + settings_.dir.string() + ": " +
                             ec.message());
  }
  spdlog::file_event_handlers events;
  events.after_open = [](const spdlog::filename_t&, std::FILE* stream) {
    ::fchmod(::fileno(stream), 0600);
    // Processes locomov starts (pg_ctl, postgres) must not inherit it.
    ::fcntl(::fileno(stream), F_SETFD, FD_CLOEXEC);
  };
  try {
    // The one writer thread is the sink's only caller: no lock of its own.
    sink_ = std::make_shared<spdlog::sinks::rotating_file_sink_st>(
        current_file().string(), static_cast<std::size_t>(settings_.max_bytes), settings_.keep,
        false, events);
  } catch (const spdlog::spdlog_ex& e) {
    throw std::runtime_error("cannot open capture file " + current_file().string() + ": " +
                             e.what());
  }
  // A message is a run of whole lines: they go in as they are.
  sink_->set_formatter(
      std::make_unique<spdlog::pattern_formatter>("%v", spdlog::pattern_time_type::utc, ""));
  writer_ = std::thread([this] { write_out(); });
  logs::app().info("capturing traffic file={} max_mb={} keep={}", current_file().string(),
                   settings_.max_bytes >> 20, settings_.keep);
}

recorder::~recorder() {
  stop();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ending_ = true;
  }
  wake_.notify_one();
  writer_.join();
}

void recorder::write(const record& r) {
  if (stopped()) {
    return;
  }
  auto line = to_line(r);
  line += '\n';
  bool full = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (buffer_.size() + line.size() > buffer_limit_bytes) {
      records_dropped().inc();
      return;
    }
    buffer_ += line;
    full = buffer_.size() >= write_at_bytes;
  }
  records_written().inc();
  if (full) {
    wake_.notify_one();
  }
}

void recorder::write_out() {
  std::string batch;
  for (;;) {
    bool ending = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, write_every,
                     [this] { return ending_ || buffer_.size() >= write_at_bytes; });
      batch.swap(buffer_);
      ending = ending_;
    }
    if (!batch.empty()) {
      try {
        // Rotation happens between messages, so a file holds whole lines.
        spdlog::details::log_msg msg("capture", spdlog::level::info, batch);
        sink_->log(msg);
        sink_->flush();
      } catch (const spdlog::spdlog_ex& e) {
        logs::app().error("cannot write capture file={} reason=\"{}\"", current_file().string(),
                          logs::one_line(e.what()));
      }
      batch.clear();
    }
    if (ending) {
      return;
    }
  }
}

void recorder::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  wake_.notify_one();
  logs::app().info("capture stopped file={}", current_file().string());
}

}  // namespace locomov::capture
