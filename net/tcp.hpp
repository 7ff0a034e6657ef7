#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "net/unique_fd.hpp"

struct sockaddr_storage;

namespace locomov::net {

/// Opens a non-blocking, close-on-exec TCP socket listening on `host`:`port`
/// (port 0 picks a free one; an IPv6 address such as "::" also takes IPv4
/// peers). Throws std::runtime_error carrying the system's reason
/// ("Address already in use", "Cannot assign requested address").
unique_fd listen_tcp(const std::string& host, std::uint16_t port);

/// The local port of a bound socket; 0 if the system cannot say.
std::uint16_t local_port(int fd);

/// TCP keepalive on an accepted socket, so that a peer gone without a FIN
/// (power cut, NAT timeout) is noticed and its descriptor freed.
struct keepalive {
  std::chrono::seconds idle{60};      ///< silence before the first probe; 0 turns keepalive off
  std::chrono::seconds interval{10};  ///< between unanswered probes
  int count = 5;                      ///< unanswered probes before the kernel drops the connection
};

/// Applies `ka` to a connected TCP socket (turning keepalive off for an idle
/// of 0). Returns an empty string, or the name and reason of the socket
/// option that could not be set.
std::string set_keepalive(int fd, const keepalive& ka);

/// Where a connection comes from.
struct endpoint {
  std::string address;  ///< "192.0.2.7", "2001:db8::1"; IPv4 peers of a dual-stack socket as IPv4
  std::uint16_t port = 0;

  /// "192.0.2.7:4711", "[2001:db8::1]:4711".
  std::string to_string() const;
};

/// The endpoint of a socket address filled in by accept().
endpoint endpoint_of(const sockaddr_storage& addr);

/// A connection the accept thread took off the listen queue.
struct accepted_connection {
  unique_fd fd;
  endpoint peer;
  std::chrono::steady_clock::time_point at;  ///< when accept() returned it
};

}  // namespace locomov::net
