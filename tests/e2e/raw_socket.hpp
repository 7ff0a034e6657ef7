#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace locomov::test {

/// A plain TCP connection to 127.0.0.1, for tests that send raw bytes, or
/// nothing at all, the way scanners and broken clients do. `source` picks
/// the client's address among the loopback range (127.0.0.0/8), so one test
/// can stand for several peers; `source_port`, when not 0, its port.
/// Test use only.
class raw_socket {
 public:
  /// Connects (blocking); throws std::runtime_error on failure.
  explicit raw_socket(int port, const std::string& source = "127.0.0.1", int source_port = 0);
  ~raw_socket();
  raw_socket(raw_socket&& other) noexcept;
  raw_socket& operator=(raw_socket&&) = delete;
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  /// False when the server has closed the connection (the write failed).
  bool send(std::string_view bytes);

  /// What arrived within `limit`, up to `max` bytes; empty on timeout or close.
  std::string receive(std::size_t max, std::chrono::milliseconds limit);

  /// True when the server closed (EOF or reset) within `limit`; whatever it
  /// sent before is dropped.
  bool closed_by_server(std::chrono::milliseconds limit);

  /// The client's local port, as the server's log shows it in peer=.
  int local_port() const;

 private:
  int fd_ = -1;
};

/// `hex` ("1603...") as bytes.
std::string from_hex(std::string_view hex);

}  // namespace locomov::test
