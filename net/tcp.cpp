#include "net/tcp.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace locomov::net {
namespace {

struct addrinfo_deleter {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};

/// Binds and listens on one resolved address; an empty string on success,
/// else the system's reason.
std::string try_listen(const addrinfo& ai, unique_fd& out) {
  unique_fd fd{socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol)};
  if (!fd) {
    return std::strerror(errno);
  }
  const int on = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (ai.ai_family == AF_INET6) {
    const int off = 0;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0 || listen(fd.get(), SOMAXCONN) != 0) {
    return std::strerror(errno);
  }
  out = std::move(fd);
  return {};
}

std::string set_int_option(int fd, int level, int name, int value, const char* label) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return std::string(label) + ": " + std::strerror(errno);
  }
  return {};
}

}  // namespace

unique_fd listen_tcp(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto service = std::to_string(port);
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    throw std::runtime_error(gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, addrinfo_deleter> owned{found};
  std::string reason = "no address to bind";
  for (const auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    unique_fd fd;
    reason = try_listen(*ai, fd);
    if (reason.empty()) {
      return fd;
    }
  }
  throw std::runtime_error(reason);
}

std::uint16_t local_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  return endpoint_of(addr).port;
}

std::string set_keepalive(int fd, const keepalive& ka) {
  if (ka.idle.count() <= 0) {
    return set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 0, "SO_KEEPALIVE");
  }
  for (auto error : {set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE,
                                    static_cast<int>(ka.idle.count()), "TCP_KEEPIDLE"),
                     set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL,
                                    static_cast<int>(ka.interval.count()), "TCP_KEEPINTVL"),
                     set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, ka.count, "TCP_KEEPCNT"),
                     set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE")}) {
    if (!error.empty()) {
      return error;
    }
  }
  return {};
}

std::string endpoint::to_string() const {
  if (address.find(':') != std::string::npos) {
    return "[" + address + "]:" + std::to_string(port);
  }
  return address + ":" + std::to_string(port);
}

endpoint endpoint_of(const sockaddr_storage& addr) {
  endpoint result;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
    result.port = ntohs(v4.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(addr);
    result.port = ntohs(v6.sin6_port);
    // One address, one spelling: per-address limits and log searches must
    // not see 192.0.2.7 and ::ffff:192.0.2.7 as two peers.
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      inet_ntop(AF_INET, &v6.sin6_addr.s6_addr[12], text, sizeof(text));
    } else {
      inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
    }
  }
  result.address = text;
  return result;
}

}  // namespace locomov::net
