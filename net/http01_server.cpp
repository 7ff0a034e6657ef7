#include "net/http01_server.hpp"

#include <sys/socket.h>

#include <stdexcept>

#include <httplib.h>

#include "common/logging.hpp"

namespace locomov::net {

http01_server::http01_server(const std::string& address, int port)
    : server_(std::make_unique<httplib::Server>()) {
  auto& srv = *server_;
  // The CA's validators are the only clients; a few threads, short waits.
  srv.new_task_queue = [] { return new httplib::ThreadPool(4); };
  srv.set_keep_alive_max_count(1);
  srv.set_read_timeout(std::chrono::seconds(5));
  srv.set_payload_max_length(1024);
  srv.set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  srv.Get(R"(/\.well-known/acme-challenge/([A-Za-z0-9_-]+))",
          [this](const httplib::Request& req, httplib::Response& res) {
            std::string answer;
            {
              std::lock_guard<std::mutex> lock(mutex_);
              auto i = tokens_.find(req.matches[1]);
              if (i != tokens_.end()) {
                answer = i->second;
              }
            }
            if (answer.empty()) {
              res.status = 404;
              return;
            }
            logs::net().info("answered ACME challenge peer={} token={}", req.remote_addr,
                             std::string(req.matches[1]));
            res.set_content(answer, "application/octet-stream");
          });
  if (port == 0) {
    port_ = srv.bind_to_any_port(address);
  } else if (srv.bind_to_port(address, port)) {
    port_ = port;
  }
  if (port_ <= 0) {
    throw std::runtime_error("cannot listen for ACME HTTP-01 challenges on " + address + ":" +
                             std::to_string(port) + " (address in use, not local, or a port "
                             "below 1024 without root)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  logs::net().info("listening listener=acme-http01 address={}:{}", address, port_);
}

http01_server::~http01_server() {
  server_->stop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void http01_server::set(const std::string& token, const std::string& key_authorization) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (key_authorization.empty()) {
    tokens_.erase(token);
  } else {
    tokens_[token] = key_authorization;
  }
}

}  // namespace locomov::net
