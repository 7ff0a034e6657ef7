#include "storage/deadline_watchdog.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

namespace locomov::storage {
namespace {

using namespace std::chrono_literals;
using clock = deadline_watchdog::clock;

/// Two connected stream sockets, closed at the end of the test.
class socket_pair {
 public:
  socket_pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  socket_pair(int a, int b) : fds_{a, b} {}
  ~socket_pair() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  socket_pair(const socket_pair&) = delete;
  socket_pair& operator=(const socket_pair&) = delete;

  int near() const { return fds_[0]; }
  int far() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

/// A TCP connection over loopback: (client, accepted server side).
std::pair<int, int> tcp_connection() {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(listener, 1), 0);
  EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(listener);
  return {client, server};
}

/// How long a blocking read on `fd` took to return, and what it returned.
std::pair<clock::duration, ssize_t> timed_read(int fd) {
  const auto start = clock::now();
  char byte = 0;
  const ssize_t n = ::recv(fd, &byte, 1, 0);
  return {clock::now() - start, n};
}

TEST(DeadlineWatchdog, ShutsDownASocketWhoseDeadlinePassed) {
  deadline_watchdog dog;
  const socket_pair sockets;
  const deadline_watchdog::watch watch(dog, sockets.near(), clock::now() + 200ms);

  const auto [took, n] = timed_read(sockets.near());

  EXPECT_EQ(n, 0);  // end of stream, as from a peer that closed
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(watch.fired());
}

TEST(DeadlineWatchdog, ShutsDownATcpSocketBlockedInRead) {
  deadline_watchdog dog;
  const auto [client, server] = tcp_connection();
  const socket_pair sockets(client, server);
  const deadline_watchdog::watch watch(dog, client, clock::now() + 200ms);

  const auto [took, n] = timed_read(client);

  EXPECT_EQ(n, 0);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(watch.fired());
}

TEST(DeadlineWatchdog, LeavesTheSocketAloneOnceTheWatchEnds) {
  deadline_watchdog dog;
  const socket_pair sockets;
  {
    const deadline_watchdog::watch watch(dog, sockets.near(), clock::now() + 100ms);
    EXPECT_FALSE(watch.fired());
  }
  std::this_thread::sleep_for(300ms);

  ASSERT_EQ(::send(sockets.far(), "x", 1, MSG_NOSIGNAL), 1);
  const auto [took, n] = timed_read(sockets.near());
  EXPECT_EQ(n, 1);
  ASSERT_EQ(::send(sockets.near(), "y", 1, MSG_NOSIGNAL), 1);
}

TEST(DeadlineWatchdog, AnEarlierDeadlineIsNotHeldUpByALaterOne) {
  deadline_watchdog dog;
  const socket_pair slow;
  const socket_pair fast;
  const deadline_watchdog::watch late(dog, slow.near(), clock::now() + 60s);
  const deadline_watchdog::watch soon(dog, fast.near(), clock::now() + 200ms);

  const auto [took, n] = timed_read(fast.near());

  EXPECT_EQ(n, 0);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(soon.fired());
  EXPECT_FALSE(late.fired());
}

TEST(DeadlineWatchdog, SharedInstanceServesManyWatchesInTurn) {
  const socket_pair sockets;
  for (int i = 0; i < 1000; ++i) {
    const deadline_watchdog::watch watch(deadline_watchdog::shared(), sockets.near(),
                                         clock::now() + 10s);
    EXPECT_FALSE(watch.fired());
  }
  ASSERT_EQ(::send(sockets.far(), "x", 1, MSG_NOSIGNAL), 1);
  EXPECT_EQ(timed_read(sockets.near()).second, 1);
}

}  // namespace
}  // namespace locomov::storage
