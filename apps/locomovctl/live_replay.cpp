#include "apps/locomovctl/live_replay.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "capture/replies.hpp"
#include "protocol/frame_splitter.hpp"

namespace locomov::ctl {
namespace {

using steady = std::chrono::steady_clock;

/// One recorded connection: its records, and what each read caused.
struct recorded_conn {
  std::string listener;
  std::vector<const capture::record*> events;
  std::vector<std::size_t> caused;  ///< per event; replies a read caused
  std::int64_t opened_us = 0;
  bool http = false;
};

/// Bounds the connections open at once.
class slots {
 public:
  explicit slots(std::size_t n) : free_(n) {}
  void take() {
    std::unique_lock<std::mutex> lock(mutex_);
    freed_.wait(lock, [this] { return free_ > 0; });
    --free_;
  }
  void give() {
    // Notified under the lock: once wait_all returns, the slots may be gone,
    // and no thread may still be about to touch them.
    std::lock_guard<std::mutex> lock(mutex_);
    ++free_;
    freed_.notify_all();
  }
  /// Waits until every slot is free again.
  void wait_all() {
    std::unique_lock<std::mutex> lock(mutex_);
    freed_.wait(lock, [this] { return free_ == size_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable freed_;
  std::size_t free_;
  const std::size_t size_ = free_;
};

/// The shared tally every connection adds its outcome to.
struct tally {
  std::mutex mutex;
  live_report report;
  std::vector<double> latencies_ms;
};

class conn_runner {
 public:
  conn_runner(const recorded_conn& conn, const actors::replay_settings& settings,
              const live_target& target, SSL_CTX* ctx, steady::time_point started,
              std::int64_t first_us, tally& out)
      : conn_(conn),
        settings_(settings),
        target_(target),
        ctx_(ctx),
        started_(started),
        first_us_(first_us),
        out_(out) {}

  void run() {
    try {
      connect();
      for (std::size_t i = 0; i < conn_.events.size(); ++i) {
        step(*conn_.events[i], conn_.caused[i]);
        if (closed_) {
          break;
        }
      }
      if (!closed_) {
        wait_for_replies();
        client_->close();
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(out_.mutex);
      ++out_.report.connections_failed;
      if (out_.report.failures.size() < 5) {
        out_.report.failures.push_back("conn " + std::to_string(conn_.events.front()->conn) +
                                       " (" + conn_.listener + "): " + e.what());
      }
    }
    finish();
  }

 private:
  void connect() {
    const bool plain = conn_.listener == "plain";
    const auto port = conn_.listener == "confo" ? target_.confo_port
                      : plain                   ? target_.plain_port
                                                : target_.packet_port;
    const auto& name = target_.servername.empty() ? target_.host : target_.servername;
    client_ = std::make_unique<client_connection>(target_.host, port, plain ? nullptr : ctx_, name,
                                                  settings_.reply_timeout);
    if (settings_.id_offset != 0 || !settings_.id_map.empty() || settings_.time_shift_us != 0) {
      splitter_ = std::make_unique<protocol::frame_splitter>(settings_.connection.max_frame);
    }
  }

  void pace(std::int64_t t_us) {
    if (settings_.speed <= 0) {
      return;
    }
    const auto at = started_ + std::chrono::microseconds(static_cast<std::int64_t>(
                                   static_cast<double>(t_us - first_us_) / settings_.speed));
    while (steady::now() < at) {
      read(std::chrono::duration_cast<std::chrono::milliseconds>(at - steady::now()) +
           std::chrono::milliseconds(1));
    }
  }

  std::string bytes_of(const capture::record& r) {
    if (!splitter_ || conn_.http) {
      return r.data;
    }
    splitter_->feed(r.data);
    std::string out;
    std::string frame;
    while (splitter_->next(frame) == protocol::frame_splitter::status::frame) {
      out += actors::rewrite_frame(frame, settings_) + "\n";
    }
    return out;
  }

  void step(const capture::record& r, std::size_t caused) {
    switch (r.ev) {
      case capture::event::in: {
        pace(r.t_us);
        const auto bytes = bytes_of(r);
        ++reads_;
        sent_bytes_ += bytes.size();
        if (!bytes.empty()) {
          client_->write_all(bytes);
        }
        if (caused > 0) {
          awaited_ += caused;
          pending_.push_back({awaited_, steady::now()});
        }
        read(std::chrono::milliseconds(0));
        break;
      }
      case capture::event::out:
        recorded_ += r.data;
        break;
      case capture::event::shut:
        // The device is done sending; locomov answers what it sent, then
        // closes.
        wait_for_replies();
        client_->shutdown_write();
        while (!closed_ && !timed_out()) {
          read(std::chrono::milliseconds(100));
        }
        break;
      case capture::event::close:
        if (r.by == capture::closer::locomov) {
          // locomov closed it: wait for that, as the device did.
          last_progress_ = steady::now();
          while (!closed_ && !timed_out()) {
            read(std::chrono::milliseconds(100));
          }
        } else {
          wait_for_replies();
        }
        client_->close();
        closed_ = true;
        break;
      case capture::event::open:
        break;
    }
  }

  bool timed_out() const { return steady::now() - last_progress_ > settings_.reply_timeout; }

  void wait_for_replies() {
    last_progress_ = steady::now();
    const auto wanted = capture::count_replies(recorded_, conn_.http);
    while (!closed_ && capture::count_replies(replayed_, conn_.http) < wanted && !timed_out()) {
      read(std::chrono::milliseconds(100));
    }
  }

  void read(std::chrono::milliseconds wait) {
    if (closed_) {
      return;
    }
    const auto before = replayed_.size();
    if (!client_->read_available(replayed_, wait)) {
      closed_ = true;
    }
    if (replayed_.size() == before) {
      return;
    }
    last_progress_ = steady::now();
    const auto answered = capture::count_replies(replayed_, conn_.http);
    while (!pending_.empty() && pending_.front().first <= answered) {
      latencies_.push_back(
          std::chrono::duration<double, std::milli>(steady::now() - pending_.front().second)
              .count());
      pending_.pop_front();
    }
  }

  void finish() {
    const auto recorded = capture::split_replies(recorded_, conn_.http);
    const auto replayed = capture::split_replies(replayed_, conn_.http);
    std::lock_guard<std::mutex> lock(out_.mutex);
    auto& r = out_.report.replies;
    ++r.connections;
    r.reads += reads_;
    r.bytes += sent_bytes_;
    r.replies_recorded += recorded.size();
    out_.latencies_ms.insert(out_.latencies_ms.end(), latencies_.begin(), latencies_.end());
    for (const auto& reply : replayed) {
      r.packets_acknowledged += reply == "Thank you.\n" ? 1 : 0;
    }
    const auto n = std::max(recorded.size(), replayed.size());
    for (std::size_t i = 0; i < n; ++i) {
      const bool have_recorded = i < recorded.size();
      const bool have_replayed = i < replayed.size();
      if (have_recorded && have_replayed && recorded[i] == replayed[i]) {
        ++r.replies_matching;
        continue;
      }
      (!have_recorded ? r.replies_extra : !have_replayed ? r.replies_missing
                                                         : r.replies_differing)++;
      if (r.differences.size() < settings_.differences_kept) {
        r.differences.push_back({conn_.events.front()->conn, conn_.listener, i,
                                 have_recorded ? recorded[i] : "",
                                 have_replayed ? replayed[i] : ""});
      }
    }
  }

  const recorded_conn& conn_;
  const actors::replay_settings& settings_;
  const live_target& target_;
  SSL_CTX* ctx_;
  steady::time_point started_;
  std::int64_t first_us_;
  tally& out_;
  std::unique_ptr<client_connection> client_;
  std::unique_ptr<protocol::frame_splitter> splitter_;
  std::string recorded_;
  std::string replayed_;
  std::size_t awaited_ = 0;
  std::deque<std::pair<std::size_t, steady::time_point>> pending_;  // replies wanted, since
  std::vector<double> latencies_;
  std::size_t reads_ = 0;
  std::uint64_t sent_bytes_ = 0;
  bool closed_ = false;
  steady::time_point last_progress_ = steady::now();
};

/// The recorded connections in the order they opened.
std::vector<recorded_conn> group(const std::vector<capture::record>& records) {
  const auto caused = capture::replies_caused(records);
  std::vector<recorded_conn> conns;
  std::map<std::uint64_t, std::size_t> open;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    if (r.ev == capture::event::open) {
      open[r.conn] = conns.size();
      conns.push_back({r.listener, {}, {}, r.t_us, false});
      continue;
    }
    auto at = open.find(r.conn);
    if (at == open.end()) {
      continue;
    }
    auto& c = conns[at->second];
    if (r.ev == capture::event::in && c.events.empty()) {
      c.http = capture::speaks_http(r.listener, r.data);
    }
    c.events.push_back(&r);
    c.caused.push_back(caused[i]);
    if (r.ev == capture::event::close) {
      open.erase(at);
    }
  }
  return conns;
}

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

live_report replay_live(const std::vector<capture::record>& records,
                        const actors::replay_settings& settings, const live_target& target) {
  const auto conns = group(records);
  auto ctx = make_client_context(target.tls);
  tally out;
  slots free(std::max<std::size_t>(target.max_connections, 1));
  const auto started = steady::now();
  const std::int64_t first_us = records.empty() ? 0 : records.front().t_us;
  for (const auto& conn : conns) {
    if (conn.listener == "plain" && target.plain_port == 0) {
      std::lock_guard<std::mutex> lock(out.mutex);
      ++out.report.connections_skipped;
      continue;
    }
    if (settings.speed > 0) {
      std::this_thread::sleep_until(
          started + std::chrono::microseconds(static_cast<std::int64_t>(
                        static_cast<double>(conn.opened_us - first_us) / settings.speed)));
    }
    if (conn.listener == "confo") {
      // The confo-arbiter decides one request after another, each seeing
      // what the one before stored: confirmation-port connections run one
      // at a time, in the recorded order, and what follows waits for them.
      conn_runner(conn, settings, target, ctx.get(), started, first_us, out).run();
      continue;
    }
    free.take();
    // Detached, so a capture of many connections holds no finished threads.
    std::thread([&, c = &conn] {
      conn_runner(*c, settings, target, ctx.get(), started, first_us, out).run();
      free.give();
    }).detach();
  }
  free.wait_all();
  out.report.replies.seconds = std::chrono::duration<double>(steady::now() - started).count();
  out.report.p50_ms = quantile(out.latencies_ms, 0.5);
  out.report.p99_ms = quantile(out.latencies_ms, 0.99);
  return out.report;
}

}  // namespace locomov::ctl
