#include "net/status_server.hpp"

#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/logging.hpp"
#include "common/metrics.hpp"

namespace locomov::net {
namespace {

using wall_clock = std::chrono::system_clock;

const wall_clock::time_point started = wall_clock::now();

std::int64_t open_descriptors() {
  std::int64_t n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(d)) {
      n += e->d_name[0] != '.' ? 1 : 0;
    }
    closedir(d);
    --n;  // the one opendir holds
  }
  return n;
}

std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t pages = 0;
  std::int64_t resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

/// Process figures, refreshed when a scrape asks for them.
void refresh_process_gauges() {
  static auto& rss = metrics::get_gauge("process_resident_memory_bytes", "",
                                        "Resident memory of locomov in bytes");
  static auto& fds = metrics::get_gauge("process_open_fds", "",
                                        "Open file descriptors of locomov");
  static auto& start = metrics::get_gauge("process_start_time_seconds", "",
                                          "When locomov started, in seconds since the epoch");
  static auto& uptime = metrics::get_gauge("locomov_uptime_seconds", "",
                                           "Seconds since locomov started");
  rss.set(resident_bytes());
  fds.set(open_descriptors());
  start.set(std::chrono::duration_cast<std::chrono::seconds>(started.time_since_epoch()).count());
  uptime.set(
      std::chrono::duration_cast<std::chrono::seconds>(wall_clock::now() - started).count());
}

/// `a="x",b="y"` (as locomov writes label text) as a JSON object.
nlohmann::json labels_object(const std::string& text) {
  auto labels = nlohmann::json::object();
  std::size_t i = 0;
  while (i < text.size()) {
    const auto eq = text.find('=', i);
    if (eq == std::string::npos || eq + 1 >= text.size() || text[eq + 1] != '"') {
      break;
    }
    std::string value;
    std::size_t j = eq + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) {
        ++j;
      }
      value.push_back(text[j]);
    }
    labels[text.substr(i, eq - i)] = value;
    i = j + 2;  // past the closing quote and the comma
  }
  return labels;
}

std::string stats_json() {
  auto series = nlohmann::json::array();
  for (const auto& s : metrics::snapshot()) {
    nlohmann::json one{{"name", s.name}, {"labels", labels_object(s.labels)}};
    switch (s.type) {
      case metrics::sample::kind::counter:
      case metrics::sample::kind::gauge:
        one["type"] = s.type == metrics::sample::kind::counter ? "counter" : "gauge";
        one["value"] = s.value;
        break;
      case metrics::sample::kind::histogram: {
        one["type"] = "histogram";
        one["count"] = s.value;
        one["sum"] = s.sum;
        auto buckets = nlohmann::json::array();
        for (std::size_t b = 0; b < s.cumulative.size(); ++b) {
          // JSON has no infinity: the last bound is the string Prometheus uses.
          nlohmann::json le = b < s.bounds.size() ? nlohmann::json(s.bounds[b]) : "+Inf";
          buckets.push_back({{"le", std::move(le)}, {"count", s.cumulative[b]}});
        }
        one["buckets"] = std::move(buckets);
        break;
      }
    }
    series.push_back(std::move(one));
  }
  return nlohmann::json{{"metrics", std::move(series)}}.dump(1) + "\n";
}

}  // namespace

status_server::status_server(const settings& s, std::function<readiness()> check)
    : server_(std::make_unique<httplib::Server>()) {
  auto& srv = *server_;
  // httplib gives each connection a thread until it closes, so a client
  // that connects and says nothing, or a scraper keeping its connection
  // alive, would make probes wait behind it: each request closes its
  // connection, one that sends nothing is dropped after 1 s (httplib's
  // keep-alive timeout is also its wait for the first request), and idle
  // threads, which cost little, serve the rest meanwhile.
  srv.new_task_queue = [] { return new httplib::ThreadPool(16); };
  srv.set_keep_alive_max_count(1);
  srv.set_keep_alive_timeout(1);
  srv.set_read_timeout(std::chrono::seconds(2));
  srv.set_write_timeout(std::chrono::seconds(5));
  srv.set_payload_max_length(4096);
  // httplib's default adds SO_REUSEPORT, which would let a second locomov
  // share the port silently instead of failing to start.
  srv.set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  srv.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    refresh_process_gauges();
    res.set_content(metrics::to_prometheus(metrics::snapshot()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/stats", [](const httplib::Request&, httplib::Response& res) {
    refresh_process_gauges();
    res.set_content(stats_json(), "application/json");
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  srv.Get("/readyz", [check = std::move(check)](const httplib::Request&, httplib::Response& res) {
    const auto r = check();
    std::string body = r.ready() ? "ready\n" : "";
    for (const auto& p : r.problems) {
      body.append(p).append("\n");
    }
    res.status = r.ready() ? 200 : 503;
    res.set_content(body, "text/plain");
  });

  if (s.port == 0) {
    port_ = srv.bind_to_any_port(s.address);
  } else if (srv.bind_to_port(s.address, s.port)) {
    port_ = s.port;
  }
  if (port_ <= 0) {
    throw std::runtime_error("cannot listen for the status endpoint on " + s.address + ":" +
                             std::to_string(s.port) + " (address in use or not local)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  logs::net().info("listening listener=status address={}:{} paths=/metrics,/stats,/healthz,"
                   "/readyz",
                   s.address, port_);
}

status_server::~status_server() {
  server_->stop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace locomov::net
