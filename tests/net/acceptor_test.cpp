// The accept thread: hands connections over, survives running out of
// descriptors without spinning, and stops accepting when destroyed.

#include "net/acceptor.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "common/metrics.hpp"

namespace locomov::net {
namespace {

using namespace std::chrono_literals;

/// What the acceptor handed over, waited on from the test thread.
class inbox {
 public:
  acceptor::handler handler() {
    return [this](accepted_connection c) {
      std::lock_guard lock(m_);
      got_.push_back(std::move(c));
      cv_.notify_all();
    };
  }

  /// True once `n` connections arrived within `limit`.
  bool wait_for(std::size_t n, std::chrono::milliseconds limit) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, limit, [&] { return got_.size() >= n; });
  }

  std::size_t size() {
    std::lock_guard lock(m_);
    return got_.size();
  }

  accepted_connection& at(std::size_t i) {
    std::lock_guard lock(m_);
    return got_.at(i);
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<accepted_connection> got_;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

/// 0 when the connect succeeded, else its errno.
int connect_to(int fd, std::uint16_t port) {
  auto addr = loopback(port);
  return connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
}

unique_fd tcp_socket() { return unique_fd{socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)}; }

TEST(Acceptor, HandsOverEachConnectionWithItsPeer) {
  auto listening = listen_tcp("127.0.0.1", 0);
  const auto port = local_port(listening.get());
  inbox got;
  acceptor a("test_handover", std::move(listening), got.handler());
  auto first = tcp_socket();
  auto second = tcp_socket();

  ASSERT_EQ(connect_to(first.get(), port), 0);
  ASSERT_EQ(connect_to(second.get(), port), 0);

  ASSERT_TRUE(got.wait_for(2, 2s));
  EXPECT_EQ(got.at(0).peer.address, "127.0.0.1");
  EXPECT_EQ(got.at(0).peer.port, local_port(first.get()));
  EXPECT_EQ(got.at(1).peer.port, local_port(second.get()));
  EXPECT_TRUE(got.at(0).fd);
}

TEST(Acceptor, DestroyingItClosesTheListeningSocket) {
  auto listening = listen_tcp("127.0.0.1", 0);
  const auto port = local_port(listening.get());
  inbox got;
  auto a = std::make_unique<acceptor>("test_stop", std::move(listening), got.handler());

  const auto before = std::chrono::steady_clock::now();
  a.reset();

  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  auto late = tcp_socket();
  EXPECT_EQ(connect_to(late.get(), port), ECONNREFUSED);
}

// The failure CAF's doorman turns into a spinning core: with no descriptor
// left, accept() fails at once and the listen queue stays readable.
TEST(Acceptor, OutOfDescriptorsBacksOffAndResumes) {
  auto listening = listen_tcp("127.0.0.1", 0);
  const auto port = local_port(listening.get());
  inbox got;
  acceptor a("test_emfile", std::move(listening), got.handler(), 100ms);
  auto& emfile = metrics::get_counter("locomov_accept_errors_total",
                                      R"(listener="test_emfile",errno="EMFILE")");
  std::vector<unique_fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(tcp_socket());
  }
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // The lowest free descriptor becomes the limit: the next one cannot exist.
  const int lowest_free = dup(0);
  close(lowest_free);
  rlimit exhausted = saved;
  exhausted.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &exhausted), 0);

  for (auto& c : clients) {
    ASSERT_EQ(connect_to(c.get(), port), 0);  // completed by the kernel, waiting in the queue
  }
  std::this_thread::sleep_for(550ms);
  const auto failures = emfile.value();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);

  EXPECT_GE(failures, 3u);
  EXPECT_LE(failures, 10u) << "accept() retried without backing off";
  EXPECT_EQ(got.size(), 0u);
  EXPECT_TRUE(got.wait_for(3, 2s)) << "accepting did not resume";
}

}  // namespace
}  // namespace locomov::net
