// TCP helpers: listening with the system's reasons, keepalive, peer addresses.

#include "net/tcp.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <stdexcept>

#include "net/open_files.hpp"

namespace locomov::net {
namespace {

/// A client socket connected to 127.0.0.1:`port`.
unique_fd connect_loopback(std::uint16_t port) {
  unique_fd fd{socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("connect failed");
  }
  return fd;
}

/// The server side of a fresh loopback connection, with its peer's address.
struct accepted_pair {
  unique_fd listening;
  unique_fd client;
  unique_fd server;
  endpoint peer;
};

accepted_pair accept_one() {
  accepted_pair pair;
  pair.listening = listen_tcp("127.0.0.1", 0);
  pair.client = connect_loopback(local_port(pair.listening.get()));
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  pair.server = unique_fd{
      accept4(pair.listening.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC)};
  pair.peer = endpoint_of(addr);
  return pair;
}

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  getsockopt(fd, level, name, &value, &len);
  return value;
}

TEST(ListenTcp, PortZeroPicksAFreePort) {
  auto fd = listen_tcp("127.0.0.1", 0);
  EXPECT_NE(local_port(fd.get()), 0);
}

TEST(ListenTcp, PortInUseNamesTheReason) {
  auto taken = listen_tcp("127.0.0.1", 0);
  try {
    listen_tcp("127.0.0.1", local_port(taken.get()));
    FAIL() << "a second listener on the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Address already in use");
  }
}

TEST(ListenTcp, AddressOfAnotherHostNamesTheReason) {
  try {
    listen_tcp("192.0.2.1", 0);
    FAIL() << "bound an address this host does not have";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Cannot assign requested address");
  }
}

TEST(ListenTcp, UnresolvableHostIsRefused) {
  EXPECT_THROW(listen_tcp("not an address", 0), std::runtime_error);
}

TEST(ListenTcp, DualStackSocketShowsIpv4PeersAsIpv4) {
  unique_fd listening;
  try {
    listening = listen_tcp("::", 0);
  } catch (const std::runtime_error&) {
    GTEST_SKIP() << "no IPv6 on this host";
  }
  auto client = connect_loopback(local_port(listening.get()));
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  unique_fd server{accept4(listening.get(), reinterpret_cast<sockaddr*>(&addr), &len, 0)};
  ASSERT_TRUE(server);
  EXPECT_EQ(endpoint_of(addr).address, "127.0.0.1");
}

TEST(Endpoint, NamesAddressAndPort) {
  auto pair = accept_one();
  EXPECT_EQ(pair.peer.address, "127.0.0.1");
  EXPECT_EQ(pair.peer.port, local_port(pair.client.get()));
  EXPECT_EQ(pair.peer.to_string(), "127.0.0.1:" + std::to_string(pair.peer.port));
}

TEST(Endpoint, Ipv6AddressesAreBracketed) {
  endpoint e{"2001:db8::1", 4711};
  EXPECT_EQ(e.to_string(), "[2001:db8::1]:4711");
}

TEST(Keepalive, SetsIdleIntervalAndCount) {
  auto pair = accept_one();
  keepalive ka;
  ka.idle = std::chrono::seconds(7);
  ka.interval = std::chrono::seconds(3);
  ka.count = 4;

  EXPECT_EQ(set_keepalive(pair.server.get(), ka), "");

  EXPECT_EQ(int_option(pair.server.get(), SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(int_option(pair.server.get(), IPPROTO_TCP, TCP_KEEPIDLE), 7);
  EXPECT_EQ(int_option(pair.server.get(), IPPROTO_TCP, TCP_KEEPINTVL), 3);
  EXPECT_EQ(int_option(pair.server.get(), IPPROTO_TCP, TCP_KEEPCNT), 4);
}

TEST(Keepalive, ZeroIdleTurnsItOff) {
  auto pair = accept_one();
  const int on = 1;
  setsockopt(pair.server.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  keepalive ka;
  ka.idle = std::chrono::seconds(0);

  EXPECT_EQ(set_keepalive(pair.server.get(), ka), "");

  EXPECT_EQ(int_option(pair.server.get(), SOL_SOCKET, SO_KEEPALIVE), 0);
}

TEST(Keepalive, ValueTheKernelRefusesIsNamed) {
  auto pair = accept_one();
  keepalive ka;
  ka.interval = std::chrono::seconds(100000);  // over the kernel's 32767

  EXPECT_EQ(set_keepalive(pair.server.get(), ka).rfind("TCP_KEEPINTVL: ", 0), 0u);
}

TEST(OpenFilesLimit, SoftLimitIsRaisedToTheHardLimit) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max < 512) {
    GTEST_SKIP() << "hard limit too low to lower the soft one";
  }
  rlimit lowered = lim;
  lowered.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const auto result = raise_open_files_limit();

  EXPECT_EQ(result.was, 256u);
  EXPECT_EQ(result.soft, lim.rlim_max);
  EXPECT_EQ(result.hard, lim.rlim_max);
  EXPECT_EQ(result.error, "");
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  EXPECT_EQ(lim.rlim_cur, lim.rlim_max);
}

}  // namespace
}  // namespace locomov::net
