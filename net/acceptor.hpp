#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "common/log_limiter.hpp"
#include "net/tcp.hpp"
#include "net/unique_fd.hpp"

namespace locomov::metrics {
class counter;
}

namespace locomov::net {

/// Accepts connections on one listening socket in a thread of its own and
/// hands each to `on_accept`, called on that thread. It replaces CAF's
/// doorman, which has no error path: at the descriptor limit accept() fails
/// at once on a socket that stays readable, and the multiplexer spins a core
/// without a word. Here running out of descriptors (or kernel memory) is
/// logged at error, counted in locomov_accept_errors_total, and retried every
/// `backoff`, so service resumes when descriptors free up.
///
/// Destroying the acceptor stops accepting: it wakes and joins the thread,
/// then closes the listening socket, so new peers are refused by the kernel.
class acceptor {
 public:
  using handler = std::function<void(accepted_connection)>;

  /// Starts accepting on `listening` (non-blocking, listening). `name` is the
  /// listener's, for log lines and metric labels.
  acceptor(std::string name, unique_fd listening, handler on_accept,
           std::chrono::milliseconds backoff = std::chrono::milliseconds(100));
  ~acceptor();
  acceptor(const acceptor&) = delete;
  acceptor& operator=(const acceptor&) = delete;

 private:
  void run();
  /// Takes what the listen queue holds, at most a batch; false to back off.
  bool accept_batch();
  /// Counts and logs a failed accept(); true when it calls for a back-off.
  bool on_error(int err);
  metrics::counter& errors_for(int err);

  std::string name_;
  unique_fd listening_;
  unique_fd wake_;  // eventfd: written once to stop the thread
  handler on_accept_;
  std::chrono::milliseconds backoff_;
  std::map<int, metrics::counter*> errors_;  // by errno, filled on first sight
  logs::limiter error_log_;
  logs::limiter recovery_log_;
  std::uint64_t failures_unreported_ = 0;  // since the last "accepting again" line
  // Last: it starts once every member it uses exists.
  std::thread thread_;
};

}  // namespace locomov::net
