#include "storage/guarded_connection.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <system_error>

#include "storage/conninfo.hpp"
#include "storage/deadline_watchdog.hpp"

namespace locomov::storage {
namespace {

/// How often a server session checks, while a statement runs, that its
/// client is still there (PostgreSQL 14+).
constexpr std::chrono::milliseconds client_check_interval{std::chrono::seconds(5)};

std::string timeout_message(std::chrono::milliseconds timeout) {
  return "no answer from the database within " + std::to_string(timeout.count()) +
         " ms, connection shut down";
}

}  // namespace

guarded_connection::guarded_connection(const std::string& conninfo,
                                       std::chrono::milliseconds timeout)
    : timeout_(timeout),
      conn_(std::make_unique<pqxx::connection>(conninfo_with_timeouts(conninfo, timeout))) {
  // libpqxx 6.4 would silently reconnect a broken connection at the next
  // transaction, on a new socket and without the session's prepared
  // statements and temporary tables; a broken connection must stay broken
  // so that its owner replaces it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  conn_->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  watch_fd_ = ::fcntl(conn_->sock(), F_DUPFD_CLOEXEC, 0);
  if (watch_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "dup of the database socket");
  }

  // A server session waiting on a lock for a client the watchdog cut off
  // would otherwise wait, and then run its statement, for nobody; with this
  // it notices the closed socket and rolls back.
  try {
    run([&] {
      pqxx::nontransaction tx(*conn_);
      tx.exec0(std::string("SET client_connection_check_interval = ") +
               std::to_string(client_check_interval.count()));
    });
  } catch (...) {
    ::close(watch_fd_);
    throw;
  }
}

guarded_connection::~guarded_connection() {
  if (watch_fd_ >= 0) {
    ::close(watch_fd_);
  }
}

void guarded_connection::run(const std::function<void()>& call) {
  const deadline_watchdog::watch watch(deadline_watchdog::shared(), watch_fd_,
                                       deadline_watchdog::clock::now() + timeout_);
  try {
    call();
  } catch (const pqxx::in_doubt_error&) {
    if (watch.fired()) {
      throw pqxx::in_doubt_error(timeout_message(timeout_) + " while committing");
    }
    throw;
  } catch (const std::exception&) {
    if (watch.fired()) {
      throw pqxx::broken_connection(timeout_message(timeout_));
    }
    throw;
  }
}

bool guarded_connection::is_open() const { return conn_ && conn_->is_open(); }

int guarded_connection::backend_pid() const { return conn_ ? conn_->backendpid() : 0; }

}  // namespace locomov::storage
