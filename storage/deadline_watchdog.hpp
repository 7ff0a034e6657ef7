#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace locomov::storage {

/// Gives blocking database calls a deadline. libpq waits forever on a
/// server that is stopped or whose packets are dropped, and no libpq
/// setting bounds a call on a unix socket; so a caller arms a watch on its
/// connection's socket, and when the deadline passes first, the watchdog's
/// thread calls shutdown(SHUT_RDWR) on it. The blocked call then returns
/// with a lost connection (libpqxx throws broken_connection, or
/// in_doubt_error during COMMIT), and the connection is finished: its owner
/// must open a new one. Thread-safe; one thread serves every watch.
class deadline_watchdog {
 public:
  using clock = std::chrono::steady_clock;

  /// The watchdog of the process, whose thread starts on first use and is
  /// joined at exit.
  static deadline_watchdog& shared();

  deadline_watchdog();
  ~deadline_watchdog();

  deadline_watchdog(const deadline_watchdog&) = delete;
  deadline_watchdog& operator=(const deadline_watchdog&) = delete;

  /// A deadline on one socket for the life of the object. `fd` must stay
  /// open until the watch is destroyed: pass a dup() of libpq's socket,
  /// since libpq closes its own when it sees the connection fail, and the
  /// number could then name another file by the time the deadline passes.
  /// Once the destructor has returned, the watchdog no longer touches `fd`.
  class watch {
   public:
    watch(deadline_watchdog& dog, int fd, clock::time_point deadline);
    ~watch();

    watch(const watch&) = delete;
    watch& operator=(const watch&) = delete;

    /// True once the deadline passed and the socket was shut down.
    bool fired() const;

   private:
    deadline_watchdog& dog_;
    std::uint64_t id_;
  };

 private:
  struct entry {
    int fd;
    clock::time_point deadline;
    bool fired;
  };

  void run();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::uint64_t, entry> entries_;
  std::uint64_t next_id_ = 0;
  /// When the thread wakes next by itself; an earlier deadline wakes it.
  clock::time_point next_wake_ = clock::time_point::max();
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace locomov::storage
