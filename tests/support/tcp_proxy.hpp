#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

namespace locomov::test {

/// A TCP listener on 127.0.0.1 that forwards each connection to a unix
/// socket (a test cluster's), and can turn into a black hole: bytes are then
/// read and dropped in both directions and connections stay open, as when a
/// network silently loses packets. For the database-trouble cases.
class tcp_proxy {
 public:
  /// Listens on a free port and forwards to `target` (a unix socket path).
  explicit tcp_proxy(std::filesystem::path target);
  ~tcp_proxy();

  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  std::uint16_t port() const { return port_; }

  /// While true, nothing is forwarded and new connections are accepted but
  /// never reach the target.
  void set_black_hole(bool on) { black_hole_ = on; }

 private:
  void run();

  std::filesystem::path target_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<bool> black_hole_{false};
  std::thread thread_;
};

/// The unix socket of a cluster listening in `socket_dir` on `port`.
std::filesystem::path pg_socket(const std::filesystem::path& socket_dir, int port);

}  // namespace locomov::test
