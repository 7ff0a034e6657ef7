#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "storage/pqxx_fwd.hpp"

namespace locomov::storage {

/// A libpqxx connection whose every call has a deadline. libpq waits
/// forever on a server that is stopped or whose packets are dropped, and no
/// libpq setting bounds a call on a unix socket; so each call arms the
/// process's deadline_watchdog on a dup() of the socket, and when the
/// deadline passes first the socket is shut down, the call fails as a lost
/// connection, and the connection is finished: its owner opens a new one.
/// One thread at a time, like any libpqxx connection.
class guarded_connection {
 public:
  /// Connects, giving up after `timeout` (libpq's connect_timeout, and for
  /// TCP keepalives and tcp_user_timeout; see conninfo_with_timeouts);
  /// throws pqxx::broken_connection when the database is unreachable.
  guarded_connection(const std::string& conninfo, std::chrono::milliseconds timeout);
  ~guarded_connection();

  guarded_connection(const guarded_connection&) = delete;
  guarded_connection& operator=(const guarded_connection&) = delete;

  /// Runs `call` under the deadline. When the watchdog cut the connection,
  /// what the call threw becomes pqxx::broken_connection (or
  /// pqxx::in_doubt_error when it was committing) with a message that says so.
  void run(const std::function<void()>& call);

  pqxx::connection& get() { return *conn_; }
  bool is_open() const;
  int backend_pid() const;
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::chrono::milliseconds timeout_;
  std::unique_ptr<pqxx::connection> conn_;
  int watch_fd_ = -1;  ///< a dup() of the connection's socket, for the watchdog
};

}  // namespace locomov::storage
