#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace locomov::net {

/// What /readyz answers: ready, or why not (one short line each).
struct readiness {
  std::vector<std::string> problems;
  bool ready() const { return problems.empty(); }
};

/// The operators' HTTP endpoint (cpp-httplib), on a thread of its own:
/// `/metrics` in the Prometheus text format, `/stats` as JSON, `/healthz`
/// (the process answers) and `/readyz` (what `check` reports). Plain HTTP:
/// bind it to loopback or a management network only.
class status_server {
 public:
  struct settings {
    std::string address = "127.0.0.1";
    int port = 38980;  ///< 0 picks a free port (tests)
  };

  /// Binds, or throws naming the address and the reason, then serves.
  /// `check` runs on the server's thread for each /readyz request.
  status_server(const settings& s, std::function<readiness()> check);

  /// Stops serving and joins the thread.
  ~status_server();

  status_server(const status_server&) = delete;
  status_server& operator=(const status_server&) = delete;

  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace locomov::net
