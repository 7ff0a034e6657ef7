#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace locomov::net {

/// Answers ACME HTTP-01 challenges (cpp-httplib, a thread of its own):
/// GET /.well-known/acme-challenge/TOKEN gives the key authorization set
/// for TOKEN, anything else 404. Bound at construction, so that port 80 is
/// taken while locomov is still root. Safe from any thread.
class http01_server {
 public:
  /// Binds address:port (0: a free port, for tests), or throws naming them.
  http01_server(const std::string& address, int port);
  ~http01_server();
  http01_server(const http01_server&) = delete;
  http01_server& operator=(const http01_server&) = delete;

  /// Serves `key_authorization` for `token`; an empty one stops serving it.
  void set(const std::string& token, const std::string& key_authorization);
  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::map<std::string, std::string> tokens_;
};

}  // namespace locomov::net
