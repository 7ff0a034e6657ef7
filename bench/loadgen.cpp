// locomov_loadgen: drives the packet port over TLS with many concurrent
// connections, the way a fleet of meters does, and reports acknowledgement
// rate, latency, server CPU and memory, and rows that reached the database.
//
// It shares two cores with the server it measures, so it must stay cheap:
// non-blocking sockets in one epoll loop per thread (one thread by default),
// TLS through OpenSSL or the leaner mbedTLS (tls_client.hpp), no per-packet
// allocation beyond the packet text, and a timer scan every few
// milliseconds instead of a timer per connection.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tls_client.hpp"

namespace locomov::bench {

namespace {

using steady = std::chrono::steady_clock;
using time_point = steady::time_point;

constexpr int exit_usage = 2;

/// How long a slot waits before reconnecting after a failed connection, so a
/// server that refuses connections is not hammered in a tight loop.
constexpr auto reconnect_backoff = std::chrono::milliseconds(100);

/// Interval of the scan for timeouts, back-offs and the end of the run.
constexpr int tick_ms = 5;

enum class shape { one, many };

struct options {
  std::string host = "127.0.0.1";
  int port = 38981;
  std::string ca_file;
  bool insecure = false;
  bool plain = false;
  std::string servername;
  tls_library client = tls_library::openssl;
  std::string cipher = "AES256-SHA";
  std::string tls_max = "1.2";
  shape load_shape = shape::one;
  int connections = 50;
  int window = 1;
  int threads = 1;
  double duration_s = 10;
  std::int64_t packets = 0;  // 0: no packet limit
  std::string ids = "1..1000";
  std::int32_t id_first = 1;
  std::int32_t id_last = 1000;
  bool session_resume = false;
  double timeout_s = 10;
  std::vector<int> server_pids;
  std::vector<int> cpu_pids;
  std::vector<int> rss_pids;
  std::string db;
  std::string db_table = "packet";
  double db_settle_s = 2;
  bool json = false;
};

std::uint32_t micros_between(time_point from, time_point to) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(us, 0, UINT32_MAX));
}

/// What one worker thread saw; merged into the totals after the run.
struct results {
  std::uint64_t connects = 0;
  std::uint64_t handshakes = 0;
  std::uint64_t resumed = 0;
  std::uint64_t sent = 0;
  std::uint64_t thank_you = 0;
  std::uint64_t not_ok = 0;
  std::map<std::string, std::uint64_t> packet_errors;      // sent, never acknowledged
  std::map<std::string, std::uint64_t> connection_errors;  // connect or handshake failed
  std::vector<std::uint32_t> send_to_ack_us;
  std::vector<std::uint32_t> connect_to_ack_us;  // shape one only
  std::vector<std::uint32_t> handshake_us;
  time_point last_ack{};
  std::string negotiated;  // "TLSv1.2 AES256-SHA" of the first handshake

  void merge(results&& other) {
    connects += other.connects;
    handshakes += other.handshakes;
    resumed += other.resumed;
    sent += other.sent;
    thank_you += other.thank_you;
    not_ok += other.not_ok;
    for (const auto& [reason, n] : other.packet_errors) {
      packet_errors[reason] += n;
    }
    for (const auto& [reason, n] : other.connection_errors) {
      connection_errors[reason] += n;
    }
    auto append = [](std::vector<std::uint32_t>& to, std::vector<std::uint32_t>& from) {
      to.insert(to.end(), from.begin(), from.end());
    };
    append(send_to_ack_us, other.send_to_ack_us);
    append(connect_to_ack_us, other.connect_to_ack_us);
    append(handshake_us, other.handshake_us);
    last_ack = std::max(last_ack, other.last_ack);
    if (negotiated.empty()) {
      negotiated = other.negotiated;
    }
  }
};

/// State every worker reads: where to connect, when to stop, and the packet
/// budget of a --packets run.
struct shared_state {
  const options* opts = nullptr;
  std::vector<sockaddr_storage> addresses;  // resolved once; connections rotate over them
  std::vector<socklen_t> address_lengths;
  time_point start{};
  time_point stop_at{};
  std::atomic<std::int64_t> budget{0};  // packets left to send when opts->packets > 0

  /// Claims one packet of the budget; false when none is left.
  bool claim() {
    if (opts->packets <= 0) {
      return true;
    }
    return budget.fetch_sub(1, std::memory_order_relaxed) > 0;
  }
  /// Returns a claim whose packet was never sent (its connection failed).
  void give_back() {
    if (opts->packets > 0) {
      budget.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

/// One thread's event loop over its share of the connections.
class worker {
 public:
  /// `tls` is null for --plain.
  worker(shared_state& shared, int connections, std::unique_ptr<tls_client> tls, unsigned seed)
      : shared_(shared), opts_(*shared.opts), conns_(static_cast<std::size_t>(connections)),
        tls_(std::move(tls)), rng_(seed) {
    id_next_ = opts_.id_first +
               static_cast<std::int32_t>(rng_() % static_cast<std::uint32_t>(id_span()));
  }

  void run();
  results& outcome() { return res_; }

 private:
  enum class phase { idle, backoff, connecting, handshaking, established, done };

  struct connection {
    phase state = phase::idle;
    int fd = -1;
    std::uint32_t generation = 0;  // tells events of a closed socket from its successor's
    std::uint32_t interest = 0;
    std::unique_ptr<tls_session> tls;
    time_point connect_start{};
    time_point wake_at{};
    bool claimed = false;     // shape one: holds a packet of the budget, not yet sent
    bool replied = false;     // shape one: its packet was answered
    std::deque<time_point> in_flight;  // send times of unanswered packets, oldest first
    std::string pending;      // a packet the TLS library has not fully taken yet
    std::string in;           // start of a reply line
  };

  std::int32_t id_span() const { return opts_.id_last - opts_.id_first + 1; }
  bool time_up(time_point now) const { return now >= shared_.stop_at; }
  /// No new packets: the time is up or this worker found the --packets budget spent.
  bool stopping(time_point now) const { return time_up(now) || budget_spent_; }

  void start_connect(connection& c, time_point now);
  void start_handshake(connection& c);
  void on_event(connection& c);
  void finish_connect(connection& c);
  void continue_handshake(connection& c);
  void on_established(connection& c);
  void service(connection& c);
  bool flush(connection& c);
  bool read_replies(connection& c);
  void issue(connection& c);
  bool send_packet(connection& c);
  void on_reply(connection& c, const std::string& line);
  void fail_connection(connection& c, const std::string& reason);
  void fail_in_flight(connection& c, const std::string& reason);
  void close(connection& c, bool clean);
  void after_close(connection& c, time_point now, bool backoff);
  void set_interest(connection& c, std::uint32_t events);
  void tick(time_point now);
  std::string make_packet();

  shared_state& shared_;
  const options& opts_;
  std::vector<connection> conns_;
  std::unique_ptr<tls_client> tls_;
  results res_;
  int epoll_fd_ = -1;
  bool budget_spent_ = false;
  std::mt19937 rng_;
  std::int32_t id_next_ = 1;
  std::size_t next_address_ = 0;
};

/// Shared by all workers of the run.
std::atomic<std::uint32_t> energy_counter{1};

std::string worker::make_packet() {
  const std::int32_t id = id_next_;
  id_next_ = id_next_ == opts_.id_last ? opts_.id_first : id_next_ + 1;
  const double voltage = 220.0 + static_cast<double>(rng_() % 200) / 10.0;
  const double freq = 49.9 + static_cast<double>(rng_() % 21) / 100.0;
  // locomov stores a packet once per distinct content, and many packets of
  // one id share a second here: the energy counter, rising as a meter's
  // does, keeps each packet distinct so that rows found match packets
  // acknowledged (exact in a REAL up to 2^24 packets per run).
  const auto energy = energy_counter.fetch_add(1, std::memory_order_relaxed);
  char buf[192];
  const int n = std::snprintf(buf, sizeof buf,
                              "{\"Id\":%d,\"timestamp\":%lld,\"status\":true,\"voltage\":%.1f,"
                              "\"freq\":%.2f,\"impActvEnrg\":%u}\n",
                              id, static_cast<long long>(std::time(nullptr)), voltage, freq,
                              energy);
  return std::string(buf, static_cast<std::size_t>(n));
}

void worker::set_interest(connection& c, std::uint32_t events) {
  if (c.interest == events) {
    return;
  }
  const std::size_t index = static_cast<std::size_t>(&c - conns_.data());
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = (static_cast<std::uint64_t>(c.generation) << 32) | index;
  epoll_ctl(epoll_fd_, c.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
  c.interest = events;
}

void worker::start_connect(connection& c, time_point now) {
  if (time_up(now) || (opts_.load_shape == shape::many && budget_spent_)) {
    c.state = phase::done;
    return;
  }
  if (opts_.load_shape == shape::one) {
    if (!shared_.claim()) {
      budget_spent_ = true;
      c.state = phase::done;
      return;
    }
    c.claimed = true;
    c.replied = false;
  }

  const std::size_t a = next_address_++ % shared_.addresses.size();
  const auto* addr = reinterpret_cast<const sockaddr*>(&shared_.addresses[a]);
  ++res_.connects;
  c.connect_start = now;
  c.fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    fail_connection(c, std::string("socket: ") + std::strerror(errno));
    return;
  }
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // The default packet port lies in Linux's ephemeral range. Our sockets left
  // in TIME_WAIT may hold it as their local port; without SO_REUSEADDR on
  // them a server restarted after the run cannot bind it.
  setsockopt(c.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  c.state = phase::connecting;
  if (::connect(c.fd, addr, shared_.address_lengths[a]) == 0) {
    start_handshake(c);
    return;
  }
  if (errno != EINPROGRESS) {
    fail_connection(c, std::string("connect: ") + std::strerror(errno));
    return;
  }
  set_interest(c, EPOLLOUT);
}

void worker::finish_connect(connection& c) {
  int so_error = 0;
  socklen_t len = sizeof so_error;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    fail_connection(c, std::string("connect: ") + std::strerror(so_error));
    return;
  }
  start_handshake(c);
}

void worker::start_handshake(connection& c) {
  if (!tls_) {
    on_established(c);
    return;
  }
  c.tls = tls_->open(c.fd, static_cast<std::size_t>(&c - conns_.data()));
  if (!c.tls) {
    fail_connection(c, "handshake: cannot make a TLS session");
    return;
  }
  c.state = phase::handshaking;
  continue_handshake(c);
}

void worker::continue_handshake(connection& c) {
  switch (c.tls->handshake()) {
    case tls_io::ok:
      ++res_.handshakes;
      if (c.tls->resumed()) {
        ++res_.resumed;
      }
      res_.handshake_us.push_back(micros_between(c.connect_start, steady::now()));
      if (res_.negotiated.empty()) {
        res_.negotiated = c.tls->negotiated();
      }
      on_established(c);
      break;
    case tls_io::want_read:
      set_interest(c, EPOLLIN);
      break;
    case tls_io::want_write:
      set_interest(c, EPOLLOUT);
      break;
    case tls_io::closed:
      fail_connection(c, "handshake: closed by server");
      break;
    case tls_io::failed:
      fail_connection(c, "handshake: " + c.tls->error());
      break;
  }
}

void worker::on_established(connection& c) {
  c.state = phase::established;
  issue(c);
  if (c.state == phase::established) {
    set_interest(c, c.pending.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
  }
}

bool worker::send_packet(connection& c) {
  if (c.pending.empty()) {
    c.pending = make_packet();
    c.in_flight.push_back(steady::now());
    ++res_.sent;
  }
  if (!c.tls) {
    const ssize_t n = ::send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.pending.erase(0, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    }
    fail_in_flight(c, std::string("no reply: write: ") + std::strerror(errno));
    return false;
  }

  std::size_t written = 0;
  switch (c.tls->write(c.pending.data(), c.pending.size(), written)) {
    case tls_io::ok:
      c.pending.erase(0, written);
      return true;
    case tls_io::want_read:
    case tls_io::want_write:
      return true;  // retried with the same bytes once the socket is ready
    case tls_io::closed:
      fail_in_flight(c, "no reply: write: closed by server");
      return false;
    case tls_io::failed:
      break;
  }
  fail_in_flight(c, "no reply: write: " + c.tls->error());
  return false;
}

void worker::issue(connection& c) {
  if (opts_.load_shape == shape::one) {
    if (c.claimed && c.in_flight.empty() && !c.replied) {
      c.claimed = false;
      send_packet(c);
    }
    return;
  }
  const auto now = steady::now();
  while (c.state == phase::established && c.pending.empty() &&
         c.in_flight.size() < static_cast<std::size_t>(opts_.window) && !stopping(now)) {
    if (!shared_.claim()) {
      budget_spent_ = true;
      return;
    }
    if (!send_packet(c)) {
      return;
    }
  }
}

bool worker::flush(connection& c) {
  if (c.pending.empty()) {
    return true;
  }
  return send_packet(c);
}

void worker::on_reply(connection& c, const std::string& line) {
  const auto now = steady::now();
  if (c.in_flight.empty()) {
    ++res_.packet_errors["reply without a packet"];
    return;
  }
  const time_point sent_at = c.in_flight.front();
  c.in_flight.pop_front();
  if (line == "Thank you.") {
    ++res_.thank_you;
    res_.last_ack = now;
    res_.send_to_ack_us.push_back(micros_between(sent_at, now));
    if (opts_.load_shape == shape::one) {
      res_.connect_to_ack_us.push_back(micros_between(c.connect_start, now));
    }
  } else if (line.rfind("!OK", 0) == 0) {
    ++res_.not_ok;
  } else {
    ++res_.packet_errors["unexpected reply"];
  }
  c.replied = true;
}

bool worker::read_replies(connection& c) {
  char buf[16384];
  for (;;) {
    std::size_t got = 0;
    bool closed = false;
    std::string failure;
    if (!c.tls) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        got = static_cast<std::size_t>(n);
      } else if (n == 0) {
        closed = true;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return true;
      } else {
        failure = std::strerror(errno);
      }
    } else {
      switch (c.tls->read(buf, sizeof buf, got)) {
        case tls_io::ok:
          break;
        case tls_io::want_read:
        case tls_io::want_write:
          return true;
        case tls_io::closed:
          closed = true;
          break;
        case tls_io::failed:
          failure = c.tls->error();
          break;
      }
    }

    if (closed || !failure.empty()) {
      if (!c.in_flight.empty()) {
        fail_in_flight(c, closed ? std::string("no reply: closed by server")
                                 : "no reply: read: " + failure);
        return false;
      }
      // Nothing was owed; the server just ended the connection (or shape one is done).
      close(c, false);
      after_close(c, steady::now(), !closed);
      return false;
    }

    c.in.append(buf, got);
    std::size_t start = 0;
    for (auto end = c.in.find('\n'); end != std::string::npos; end = c.in.find('\n', start)) {
      std::string line = c.in.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      on_reply(c, line);
      start = end + 1;
    }
    c.in.erase(0, start);
  }
}

void worker::service(connection& c) {
  if (!flush(c) || !read_replies(c)) {
    return;
  }
  if (opts_.load_shape == shape::one && c.replied && c.in_flight.empty()) {
    if (opts_.session_resume && c.tls) {
      c.tls->keep_for_resume();
    }
    close(c, true);
    after_close(c, steady::now(), false);
    return;
  }
  issue(c);
  if (c.state != phase::established) {
    return;
  }
  if (opts_.load_shape == shape::many && c.in_flight.empty() && c.pending.empty() &&
      stopping(steady::now())) {
    close(c, true);
    c.state = phase::done;
    return;
  }
  set_interest(c, c.pending.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void worker::on_event(connection& c) {
  switch (c.state) {
    case phase::connecting:
      finish_connect(c);
      break;
    case phase::handshaking:
      continue_handshake(c);
      break;
    case phase::established:
      service(c);
      break;
    default:
      break;
  }
}

void worker::fail_connection(connection& c, const std::string& reason) {
  ++res_.connection_errors[reason];
  if (c.claimed) {
    c.claimed = false;
    shared_.give_back();
  }
  close(c, false);
  after_close(c, steady::now(), true);
}

void worker::fail_in_flight(connection& c, const std::string& reason) {
  res_.packet_errors[reason] += c.in_flight.size();
  c.in_flight.clear();
  c.pending.clear();
  close(c, false);
  after_close(c, steady::now(), true);
}

void worker::close(connection& c, bool clean) {
  if (c.tls) {
    if (clean) {
      c.tls->close_notify();
    }
    c.tls.reset();
  }
  if (c.fd >= 0) {
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  c.interest = 0;
  ++c.generation;
  c.in_flight.clear();
  c.pending.clear();
  c.in.clear();
  c.state = phase::idle;
}

void worker::after_close(connection& c, time_point now, bool backoff) {
  if (time_up(now)) {
    c.state = phase::done;
  } else if (backoff) {
    c.state = phase::backoff;
    c.wake_at = now + reconnect_backoff;
  } else {
    start_connect(c, now);
  }
}

void worker::tick(time_point now) {
  const auto timeout = std::chrono::duration_cast<steady::duration>(
      std::chrono::duration<double>(opts_.timeout_s));
  const bool stop = stopping(now);
  const bool late = time_up(now);
  for (auto& c : conns_) {
    switch (c.state) {
      case phase::idle:
        start_connect(c, now);
        break;
      case phase::backoff:
        if (late) {
          c.state = phase::done;
        } else if (now >= c.wake_at) {
          start_connect(c, now);
        }
        break;
      case phase::connecting:
      case phase::handshaking:
        if (late) {
          // Its packet was never sent; leave it out of the figures.
          c.claimed = false;
          close(c, false);
          c.state = phase::done;
        } else if (now - c.connect_start > timeout) {
          fail_connection(c, c.state == phase::connecting ? "connect: timeout"
                                                          : "handshake: timeout");
        }
        break;
      case phase::established:
        if (!c.in_flight.empty() && now - c.in_flight.front() > timeout) {
          fail_in_flight(c, "no reply: timeout");
        } else if (stop && c.in_flight.empty() && c.pending.empty()) {
          close(c, true);
          c.state = phase::done;
        } else if (!stop && opts_.load_shape == shape::many) {
          issue(c);  // a budget or window freed elsewhere; cheap when nothing to do
        }
        break;
      case phase::done:
        break;
    }
  }
}

void worker::run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  }
  res_.send_to_ack_us.reserve(1 << 16);

  std::vector<epoll_event> events(std::max<std::size_t>(conns_.size(), 16));
  auto last_tick = steady::now() - std::chrono::hours(1);
  for (;;) {
    const auto now = steady::now();
    if (now - last_tick >= std::chrono::milliseconds(tick_ms)) {
      tick(now);
      last_tick = now;
      const bool all_done = std::all_of(conns_.begin(), conns_.end(), [](const connection& c) {
        return c.state == phase::done;
      });
      if (all_done) {
        break;
      }
    }

    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), tick_ms);
    if (n < 0 && errno != EINTR) {
      throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) {
      const auto index = static_cast<std::size_t>(events[i].data.u64 & 0xffffffffu);
      const auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
      connection& c = conns_[index];
      if (c.generation == generation) {
        on_event(c);
      }
    }
  }
  ::close(epoll_fd_);
}

// ---- measurements around the run -------------------------------------------------------------

/// utime + stime of a process in milliseconds, all its threads included, or
/// nothing when the process is gone.
std::optional<double> process_cpu_ms(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) {
    return std::nullopt;
  }
  // The command name may hold spaces and parentheses; fields resume after the last ')'.
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) {
      utime = std::stoull(field);
    } else if (i == 15) {
      stime = std::stoull(field);
    }
  }
  return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct memory_sample {
  double hwm_mib = 0;  // VmHWM: peak resident set since the process started
  double rss_mib = 0;  // VmRSS: resident set now
};

std::optional<memory_sample> process_memory(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) {
    return std::nullopt;
  }
  memory_sample m;
  std::string line;
  while (std::getline(in, line)) {
    const bool hwm = line.rfind("VmHWM:", 0) == 0;
    const bool rss = line.rfind("VmRSS:", 0) == 0;
    if (hwm || rss) {
      const double kib = std::stod(line.substr(6));
      (hwm ? m.hwm_mib : m.rss_mib) = kib / 1024.0;
    }
  }
  return m;
}

double sum_cpu_ms(const std::vector<int>& pids, std::map<int, double>& per_pid) {
  double total = 0;
  for (const int pid : pids) {
    if (const auto ms = process_cpu_ms(pid)) {
      per_pid[pid] = *ms;
      total += *ms;
    }
  }
  return total;
}

double own_cpu_ms() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1000.0 + static_cast<double>(t.tv_usec) / 1000.0;
  };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

std::int64_t count_rows(pqxx::connection& conn, const std::string& table) {
  pqxx::nontransaction tx(conn);
  return tx.exec1("SELECT count(*) FROM " + table)[0].as<std::int64_t>();
}

/// Polls the row count until it has not changed for `settle_s` seconds (the
/// server may still be flushing batches after its last acknowledgement; it
/// should not, since it acknowledges only stored packets), at most a minute.
std::int64_t wait_for_quiet_count(pqxx::connection& conn, const std::string& table,
                                  double settle_s) {
  const auto settle = std::chrono::duration<double>(settle_s);
  const auto give_up = steady::now() + std::chrono::minutes(1);
  std::int64_t last = count_rows(conn, table);
  auto last_change = steady::now();
  while (steady::now() - last_change < settle && steady::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    const std::int64_t now_count = count_rows(conn, table);
    if (now_count != last) {
      last = now_count;
      last_change = steady::now();
    }
  }
  return last;
}

struct percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;  // milliseconds
};

percentiles summarize(std::vector<std::uint32_t>& us) {
  percentiles p;
  if (us.empty()) {
    return p;
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(us.size() - 1) + 0.5);
    return static_cast<double>(us[i]) / 1000.0;
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = static_cast<double>(us.back()) / 1000.0;
  return p;
}

bool parse_ids(const std::string& text, std::int32_t& first, std::int32_t& last) {
  static const std::regex range(R"((\d+)\s*(?:\.\.|-)\s*(\d+))");
  static const std::regex single(R"(\d+)");
  std::smatch m;
  try {
    if (std::regex_match(text, m, range)) {
      first = std::stoi(m[1]);
      last = std::stoi(m[2]);
    } else if (std::regex_match(text, m, single)) {
      first = 1;
      last = std::stoi(m[0]);
    } else {
      return false;
    }
  } catch (const std::out_of_range&) {
    return false;
  }
  return first >= 1 && first <= last;
}

void resolve(shared_state& shared, const options& o) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(o.port);
  if (const int rc = getaddrinfo(o.host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw std::invalid_argument("cannot resolve " + o.host + ": " + gai_strerror(rc));
  }
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    sockaddr_storage s{};
    std::memcpy(&s, a->ai_addr, a->ai_addrlen);
    shared.addresses.push_back(s);
    shared.address_lengths.push_back(a->ai_addrlen);
    break;  // the first address only: every connection must measure the same path
  }
  freeaddrinfo(found);
}

void add_options(CLI::App& app, options& o) {
  app.add_option("--host", o.host, "Server address")->capture_default_str();
  app.add_option("--port", o.port, "Packet port")->capture_default_str()->check(
      CLI::Range(1, 65535));
  auto* ca = app.add_option("--ca", o.ca_file, "PEM file of the CA that signed the server "
                                               "certificate")
                 ->check(CLI::ExistingFile);
  auto* insecure = app.add_flag("--insecure", o.insecure, "Do not verify the server certificate");
  ca->excludes(insecure);
  auto* plain = app.add_flag("--plain", o.plain, "Plain TCP, for the development listener");
  plain->excludes(ca)->excludes(insecure);
  app.add_option("--servername", o.servername,
                 "SNI and certificate name (default: --host)");
  // Words through callbacks: CLI11's CheckedTransformer would also take the
  // enums' numbers, and name them in its error message.
  app.add_option_function<std::string>(
         "--client",
         [&o](const std::string& v) {
           o.client = v == "mbedtls" ? tls_library::mbedtls : tls_library::openssl;
         },
         "TLS library: openssl, or mbedtls (TLS 1.2 only, an embedded device's kind of "
         "stack, about half OpenSSL 3's CPU per handshake; with an IP address as --host it "
         "needs --servername, such as localhost for locomov's self-signed certificate) "
         "(default: openssl)")
      ->check(CLI::IsMember({"openssl", "mbedtls"}));
  app.add_option("--cipher", o.cipher, "TLS 1.2 cipher list, OpenSSL syntax (either library)")
      ->capture_default_str();
  app.add_option("--tls-max", o.tls_max, "Highest TLS version (1.2 or 1.3)")
      ->capture_default_str()
      ->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option_function<std::string>(
         "--shape",
         [&o](const std::string& v) { o.load_shape = v == "many" ? shape::many : shape::one; },
         "one: connect, send one packet, read the reply, close, repeat; many: "
         "persistent connections (default: one)")
      ->check(CLI::IsMember({"one", "many"}));
  app.add_option("--connections", o.connections, "Concurrent connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--window", o.window, "Shape many: packets in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--threads", o.threads, "Event loop threads sharing the connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--duration", o.duration_s,
                 "Seconds to send for (default 10; 300 as a cap when --packets is given)")
      ->check(CLI::PositiveNumber);
  app.add_option("--packets", o.packets, "Stop after this many packets have been sent")
      ->check(CLI::PositiveNumber);
  app.add_option("--ids", o.ids, "Device ids the packets rotate over: A..B, or K for 1..K")
      ->capture_default_str();
  app.add_flag("--session-resume", o.session_resume,
               "Resume TLS sessions on reconnect (devices do full handshakes)");
  app.add_option("--timeout", o.timeout_s,
                 "Seconds allowed for connect plus handshake, and for each reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--server-pid", o.server_pids, "Process to measure CPU and RSS of; repeatable");
  app.add_option("--cpu-pid", o.cpu_pids,
                 "Process whose CPU time counts as the server's (e.g. a postgres backend); "
                 "repeatable");
  app.add_option("--rss-pid", o.rss_pids, "Process whose VmHWM/VmRSS to report; repeatable");
  app.add_option("--db", o.db, "libpq connection string; count rows before and after the run");
  app.add_option("--db-table", o.db_table, "Table whose rows are counted")
      ->capture_default_str();
  app.add_option("--db-settle", o.db_settle_s,
                 "Seconds the row count must stay unchanged before it is read")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", o.json, "Print the results as one JSON object");
}

nlohmann::ordered_json latency_json(const percentiles& p) {
  return {{"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"max", p.max}};
}

std::string format_ms(const percentiles& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", p.p50, p.p90, p.p99,
                p.max);
  return buf;
}

int run(options& o, CLI::App& app) {
  if (!o.plain && o.ca_file.empty() && !o.insecure) {
    std::cerr << "locomov_loadgen: give --ca FILE, or --insecure, or --plain\n";
    return exit_usage;
  }
  if (!parse_ids(o.ids, o.id_first, o.id_last)) {
    std::cerr << "locomov_loadgen: --ids must be A..B or K, with 1 <= A <= B\n";
    return exit_usage;
  }
  if (app.count("--duration") == 0) {
    o.duration_s = o.packets > 0 ? 300 : 10;
  }
  static const std::regex table_name(R"([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?)");
  if (!std::regex_match(o.db_table, table_name)) {
    std::cerr << "locomov_loadgen: --db-table must be a plain [schema.]table name\n";
    return exit_usage;
  }
  o.threads = std::min(o.threads, o.connections);

  shared_state shared;
  shared.opts = &o;
  shared.budget = o.packets;
  tls_client_options tls;
  tls.library = o.client;
  tls.cipher = o.cipher;
  tls.tls_max = o.tls_max;
  tls.ca_file = o.ca_file;
  tls.insecure = o.insecure;
  tls.verify_name = o.servername.empty() ? o.host : o.servername;
  tls.session_resume = o.session_resume;
  // Each thread gets its own TLS client (mbedTLS's random generator is not
  // shared), made before the run so that bad TLS options stop it first.
  std::vector<std::unique_ptr<worker>> workers;
  std::random_device seeds;
  try {
    resolve(shared, o);
    for (int t = 0; t < o.threads; ++t) {
      const int share = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
      auto client = o.plain ? nullptr : make_tls_client(tls, static_cast<std::size_t>(share));
      workers.push_back(std::make_unique<worker>(shared, share, std::move(client), seeds()));
    }
  } catch (const std::invalid_argument& e) {
    std::cerr << "locomov_loadgen: " << e.what() << '\n';
    return exit_usage;
  }

  std::vector<int> cpu_pids = o.server_pids;
  cpu_pids.insert(cpu_pids.end(), o.cpu_pids.begin(), o.cpu_pids.end());
  std::vector<int> rss_pids = o.server_pids;
  rss_pids.insert(rss_pids.end(), o.rss_pids.begin(), o.rss_pids.end());

  std::unique_ptr<pqxx::connection> db;
  std::int64_t rows_before = 0;
  if (!o.db.empty()) {
    try {
      db = std::make_unique<pqxx::connection>(o.db);
      rows_before = count_rows(*db, o.db_table);
    } catch (const std::exception& e) {
      std::cerr << "locomov_loadgen: database: " << e.what() << '\n';
      return 1;
    }
  }

  std::map<int, double> cpu_before_per_pid;
  const double cpu_before = sum_cpu_ms(cpu_pids, cpu_before_per_pid);
  const double own_before = own_cpu_ms();

  shared.start = steady::now();
  shared.stop_at =
      shared.start + std::chrono::duration_cast<steady::duration>(
                         std::chrono::duration<double>(o.duration_s));
  std::vector<std::thread> threads;
  std::vector<std::string> failures(workers.size());
  for (std::size_t t = 0; t < workers.size(); ++t) {
    threads.emplace_back([&, t] {
      try {
        workers[t]->run();
      } catch (const std::exception& e) {
        failures[t] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const auto finished = steady::now();
  for (const auto& f : failures) {
    if (!f.empty()) {
      std::cerr << "locomov_loadgen: " << f << '\n';
      return 1;
    }
  }

  results total;
  for (auto& w : workers) {
    total.merge(std::move(w->outcome()));
  }
  const double own_cpu = own_cpu_ms() - own_before;

  std::optional<std::int64_t> rows_found;
  std::string db_error;
  if (db) {
    try {
      rows_found = wait_for_quiet_count(*db, o.db_table, o.db_settle_s) - rows_before;
    } catch (const std::exception& e) {
      db_error = e.what();
    }
  }
  std::map<int, double> cpu_after_per_pid;
  const double cpu_after = sum_cpu_ms(cpu_pids, cpu_after_per_pid);

  const auto ack_end = total.thank_you > 0 ? total.last_ack : finished;
  const double seconds = std::chrono::duration<double>(ack_end - shared.start).count();
  const double rate = seconds > 0 ? static_cast<double>(total.thank_you) / seconds : 0;
  const percentiles send_lat = summarize(total.send_to_ack_us);
  const percentiles connect_lat = summarize(total.connect_to_ack_us);
  const percentiles handshake_lat = summarize(total.handshake_us);
  std::uint64_t packet_errors = 0;
  for (const auto& entry : total.packet_errors) {
    packet_errors += entry.second;
  }
  std::uint64_t connection_errors = 0;
  for (const auto& entry : total.connection_errors) {
    connection_errors += entry.second;
  }
  const double server_cpu = cpu_after - cpu_before;
  double hwm_sum = 0;
  std::map<int, memory_sample> memory;
  for (const int pid : rss_pids) {
    if (const auto m = process_memory(pid)) {
      memory[pid] = *m;
      hwm_sum += m->hwm_mib;
    }
  }

  nlohmann::ordered_json j;
  j["shape"] = o.load_shape == shape::one ? "one" : "many";
  j["connections"] = o.connections;
  j["window"] = o.window;
  j["threads"] = o.threads;
  j["client"] = o.plain ? "plain" : o.client == tls_library::mbedtls ? "mbedtls" : "openssl";
  j["tls"] = o.plain ? "plain" : total.negotiated;
  j["seconds"] = seconds;
  j["connects"] = total.connects;
  j["handshakes"] = total.handshakes;
  j["resumed"] = total.resumed;
  j["sent"] = total.sent;
  j["acknowledged"] = total.thank_you;
  j["not_ok"] = total.not_ok;
  j["packet_errors"] = total.packet_errors;
  j["connection_errors"] = total.connection_errors;
  j["acknowledged_per_s"] = rate;
  j["send_to_ack_ms"] = latency_json(send_lat);
  if (o.load_shape == shape::one) {
    j["connect_to_ack_ms"] = latency_json(connect_lat);
  }
  j["handshake_ms"] = latency_json(handshake_lat);
  j["loadgen_cpu_ms"] = own_cpu;
  if (db) {
    if (rows_found) {
      j["rows_found"] = *rows_found;
      j["rows_minus_acknowledged"] = *rows_found - static_cast<std::int64_t>(total.thank_you);
    } else {
      j["db_error"] = db_error;
    }
  }
  if (!cpu_pids.empty()) {
    j["server_cpu_ms"] = server_cpu;
    j["server_cpu_ms_per_ack"] =
        total.thank_you > 0 ? server_cpu / static_cast<double>(total.thank_you) : 0.0;
    for (const auto& [pid, after] : cpu_after_per_pid) {
      j["server_cpu_ms_by_pid"][std::to_string(pid)] = after - cpu_before_per_pid[pid];
    }
  }
  if (!rss_pids.empty()) {
    j["server_peak_rss_mib"] = hwm_sum;
    for (const auto& [pid, m] : memory) {
      j["server_memory_by_pid"][std::to_string(pid)] = {{"vm_hwm_mib", m.hwm_mib},
                                                        {"vm_rss_mib", m.rss_mib}};
    }
  }

  if (o.json) {
    std::cout << j.dump(2) << '\n';
  } else {
    std::ostringstream out;
    char line[256];
    auto row = [&](const char* label, const std::string& value) {
      std::snprintf(line, sizeof line, "%-26s %s\n", label, value.c_str());
      out << line;
    };
    auto fmt = [&](const char* format, double value) {
      char buf[64];
      std::snprintf(buf, sizeof buf, format, value);
      return std::string(buf);
    };
    row("shape", std::string(j["shape"]) + ", " + std::to_string(o.connections) +
                     " connections, window " + std::to_string(o.window) + ", " +
                     std::to_string(o.threads) + " thread(s)");
    row("tls", o.plain ? std::string("plain")
                       : (total.negotiated.empty() ? "none negotiated" : total.negotiated) + " (" +
                             j["client"].get<std::string>() + ")");
    row("measured", fmt("%.2f s", seconds));
    row("connects / handshakes", std::to_string(total.connects) + " / " +
                                     std::to_string(total.handshakes) + " (" +
                                     std::to_string(total.resumed) + " resumed)");
    row("packets sent", std::to_string(total.sent));
    row("acknowledged", std::to_string(total.thank_you));
    row("!OK", std::to_string(total.not_ok));
    row("no reply", std::to_string(packet_errors));
    for (const auto& [reason, n] : total.packet_errors) {
      out << "  " << n << " x " << reason << '\n';
    }
    row("connection errors", std::to_string(connection_errors));
    for (const auto& [reason, n] : total.connection_errors) {
      out << "  " << n << " x " << reason << '\n';
    }
    row("acknowledged/s", fmt("%.1f", rate));
    row("send-to-ack ms", format_ms(send_lat));
    if (o.load_shape == shape::one) {
      row("connect-to-ack ms", format_ms(connect_lat));
    }
    row("handshake ms", format_ms(handshake_lat));
    if (db) {
      if (rows_found) {
        row("rows found", std::to_string(*rows_found));
        row("rows - acknowledged",
            std::to_string(*rows_found - static_cast<std::int64_t>(total.thank_you)));
      } else {
        row("rows found", "unknown: " + db_error);
      }
    }
    if (!cpu_pids.empty()) {
      row("server CPU", fmt("%.0f ms", server_cpu) +
                            (total.thank_you > 0
                                 ? fmt(" = %.4f ms per acknowledged packet",
                                       server_cpu / static_cast<double>(total.thank_you))
                                 : std::string()));
      for (const auto& [pid, after] : cpu_after_per_pid) {
        out << "  pid " << pid << ": " << fmt("%.0f ms", after - cpu_before_per_pid[pid]) << '\n';
      }
    }
    if (!rss_pids.empty()) {
      row("server peak RSS", fmt("%.1f MiB (VmHWM, summed)", hwm_sum));
      for (const auto& [pid, m] : memory) {
        out << "  pid " << pid << ": " << fmt("VmHWM %.1f MiB", m.hwm_mib)
            << fmt(", VmRSS %.1f MiB", m.rss_mib) << '\n';
      }
    }
    row("loadgen CPU", fmt("%.0f ms", own_cpu));
    std::cout << out.str();
  }

  const bool clean = total.thank_you == total.sent && connection_errors == 0 &&
                     (!rows_found || *rows_found == static_cast<std::int64_t>(total.thank_you));
  return clean ? 0 : 1;
}

}  // namespace

}  // namespace locomov::bench

int main(int argc, char** argv) {
  using namespace locomov::bench;

  // OpenSSL writes through plain write(); a server hanging up must show as an
  // error on that connection, not end the run.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"locomov_loadgen: TLS load on the locomov packet port"};
  options o;
  add_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : exit_usage;
  }
  return run(o, app);
}
