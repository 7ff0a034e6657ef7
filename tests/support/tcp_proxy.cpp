#include "tests/support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace locomov::test {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

int connect_unix(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return fd;
  }
  if (fd >= 0) {
    ::close(fd);
  }
  return -1;
}

struct pair {
  int client = -1;
  int server = -1;  // -1 for a connection accepted into the black hole
};

}  // namespace

std::filesystem::path pg_socket(const std::filesystem::path& socket_dir, int port) {
  return socket_dir / (".s.PGSQL." + std::to_string(port));
}

tcp_proxy::tcp_proxy(std::filesystem::path target) : target_(std::move(target)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fail("tcp_proxy listen");
  }
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    fail("tcp_proxy pipe");
  }
  thread_ = std::thread([this] { run(); });
}

tcp_proxy::~tcp_proxy() {
  const char byte = 0;
  [[maybe_unused]] auto n = ::write(wake_[1], &byte, 1);
  thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    ::close(fd);
  }
}

void tcp_proxy::run() {
  std::vector<pair> pairs;
  std::vector<pollfd> fds;
  char buf[16 * 1024];
  for (;;) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& p : pairs) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.server, static_cast<short>(p.server >= 0 ? POLLIN : 0), 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
      return;
    }
    if (fds[0].revents != 0) {
      break;
    }
    // Only the pairs that were polled have entries in fds; a connection
    // accepted below joins them on the next round.
    const std::size_t polled = pairs.size();
    if (fds[1].revents & POLLIN) {
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        pairs.push_back({client, black_hole_ ? -1 : connect_unix(target_)});
      }
    }
    for (std::size_t i = 0; i < polled; ++i) {
      auto& p = pairs[i];
      bool closed = false;
      for (int side = 0; side < 2 && !closed; ++side) {
        const auto& pfd = fds[2 + 2 * i + side];
        if (pfd.fd < 0 || (pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
          continue;
        }
        const ssize_t n = ::read(pfd.fd, buf, sizeof buf);
        if (n <= 0) {
          closed = true;
          break;
        }
        const int to = side == 0 ? p.server : p.client;
        if (!black_hole_ && to >= 0) {
          [[maybe_unused]] auto w = ::send(to, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
        }
      }
      if (closed) {
        ::close(p.client);
        if (p.server >= 0) {
          ::close(p.server);
        }
        p.client = -1;
      }
    }
    pairs.erase(std::remove_if(pairs.begin(), pairs.end(), [](const pair& p) { return p.client < 0; }),
                pairs.end());
  }
  for (const auto& p : pairs) {
    ::close(p.client);
    if (p.server >= 0) {
      ::close(p.server);
    }
  }
}

}  // namespace locomov::test
