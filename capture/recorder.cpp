#include "capture/recorder.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <spdlog/async_logger.h>
#include <spdlog/details/periodic_worker.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>

#include "common/logging.hpp"
#include "common/metrics.hpp"

namespace locomov::capture {
namespace {

/// Records the queue holds before the oldest are dropped: about a second
/// of a busy fleet's traffic.
constexpr std::size_t queue_records = 65536;

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
  std::error_code ec;
  std::filesystem::create_directories(settings_.dir, ec);
  if (ec) {
    throw std::runtime_error("cannot make capture folder " + settings_.dir.string() + ": " +
                             ec.message());
  }
  spdlog::file_event_handlers events;
  // Processes locomov starts (pg_ctl, postgres) must not inherit it.
  events.after_open = [](const spdlog::filename_t&, std::FILE* stream) {
    ::fcntl(::fileno(stream), F_SETFD, FD_CLOEXEC);
  };
  std::shared_ptr<spdlog::sinks::rotating_file_sink_mt> sink;
  try {
    sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        current_file().string(), static_cast<std::size_t>(settings_.max_bytes), settings_.keep,
        false, events);
  } catch (const spdlog::spdlog_ex& e) {
    throw std::runtime_error("cannot open capture file " + current_file().string() + ": " +
                             e.what());
  }
  sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      "%v", spdlog::pattern_time_type::utc, "\n"));
  pool_ = std::make_shared<spdlog::details::thread_pool>(queue_records, 1);
  logger_ = std::make_shared<spdlog::async_logger>("capture", sink, pool_,
                                                   spdlog::async_overflow_policy::overrun_oldest);
  logger_->set_level(spdlog::level::info);
  logger_->flush_on(spdlog::level::off);
  // A flush per record would cost a write(2) per record; once a second keeps
  // the file close behind the traffic for a fraction of that.
  flusher_ = std::make_unique<spdlog::details::periodic_worker>(
      [logger = logger_] { logger->flush(); }, std::chrono::seconds(1));
  logs::app().info("capturing traffic file={} max_mb={} keep={}", current_file().string(),
                   settings_.max_bytes >> 20, settings_.keep);
}

recorder::~recorder() {
  stop();
  flusher_.reset();
  logger_.reset();
  // The pool's thread writes what is queued before it ends.
  pool_.reset();
}

void recorder::write(const record& r) {
  if (stopped()) {
    return;
  }
  logger_->info(to_line(r));
  records_written().inc();
  // The pool counts overruns under its queue's lock: look now and then.
  if ((written_.fetch_add(1, std::memory_order_relaxed) & 1023) == 1023) {
    count_dropped();
  }
}

void recorder::count_dropped() {
  std::lock_guard<std::mutex> lock(dropped_mutex_);
  const auto now = pool_->overrun_counter();
  if (now > dropped_seen_) {
    records_dropped().inc(now - dropped_seen_);
    dropped_seen_ = now;
  }
}

void recorder::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  count_dropped();
  logger_->flush();
  logs::app().info("capture stopped file={}", current_file().string());
}

}  // namespace locomov::capture
