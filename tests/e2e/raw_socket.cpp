#include "tests/e2e/raw_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace locomov::test {
namespace {

sockaddr_in ipv4(const std::string& address, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    throw std::runtime_error("not an IPv4 address: " + address);
  }
  return addr;
}

}  // namespace

raw_socket::raw_socket(int port, const std::string& source, int source_port) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  }
  const int on = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  auto from = ipv4(source, source_port);
  auto to = ipv4("127.0.0.1", port);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
      connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    const std::string reason = std::strerror(errno);
    close(fd_);
    throw std::runtime_error("connect from " + source + " to 127.0.0.1:" + std::to_string(port) +
                             " failed: " + reason);
  }
}

raw_socket::~raw_socket() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

raw_socket::raw_socket(raw_socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

bool raw_socket::send(std::string_view bytes) {
  return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(bytes.size());
}

std::string raw_socket::receive(std::size_t max, std::chrono::milliseconds limit) {
  std::string got;
  const auto until = std::chrono::steady_clock::now() + limit;
  while (got.size() < max) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    char buf[4096];
    const ssize_t n = recv(fd_, buf, std::min(sizeof(buf), max - got.size()), 0);
    if (n <= 0) {
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

bool raw_socket::closed_by_server(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char buf[4096];
    if (recv(fd_, buf, sizeof(buf), 0) <= 0) {
      return true;
    }
  }
}

int raw_socket::local_port() const {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

}  // namespace locomov::test
