#include "net/acceptor.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "common/logging.hpp"
#include "common/metrics.hpp"

namespace locomov::net {
namespace {

// Connections taken per wake-up before the stop descriptor is looked at again.
constexpr int batch = 64;

/// Failures that belong to one peer (it reset the connection before we took
/// it, or Linux passed on a pending network error): take the next one.
bool peer_failure(int err) {
  switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

const char* errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "unknown";
}

}  // namespace

acceptor::acceptor(std::string name, unique_fd listening, handler on_accept,
                   std::chrono::milliseconds backoff)
    : name_(std::move(name)),
      listening_(std::move(listening)),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      on_accept_(std::move(on_accept)),
      backoff_(backoff) {
  if (!wake_) {
    throw std::runtime_error(std::string("cannot create the accept thread's eventfd: ") +
                             std::strerror(errno));
  }
  // The series an operator alerts on exist, at zero, before the first failure.
  for (int err : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) {
    errors_for(err);
  }
  thread_ = std::thread([this] { run(); });
}

acceptor::~acceptor() {
  const std::uint64_t one = 1;
  // An eventfd write of 1 cannot fail short of overflowing the counter.
  [[maybe_unused]] auto written = ::write(wake_.get(), &one, sizeof(one));
  thread_.join();
}

void acceptor::run() {
  // Otherwise it inherits the name of the thread that started it, often
  // CAF's "caf.multiplexer", and top -H blames the wrong thread.
  const auto thread_name = ("accept." + name_).substr(0, 15);
  pthread_setname_np(pthread_self(), thread_name.c_str());
  bool backing_off = false;
  for (;;) {
    // While backing off the listen queue is left out of the poll set: it
    // stays readable, and only time (or the stop request) should wake us.
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {listening_.get(), POLLIN, 0}};
    const int rc =
        poll(fds, backing_off ? 1 : 2, backing_off ? static_cast<int>(backoff_.count()) : -1);
    if (rc < 0 && errno != EINTR) {
      logs::net().critical("accept thread cannot poll listener={} reason=\"{}\"", name_,
                           std::strerror(errno));
      return;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      return;
    }
    backing_off = !accept_batch();
  }
}

bool acceptor::accept_batch() {
  for (int i = 0; i < batch; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    unique_fd fd{accept4(listening_.get(), reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC)};
    if (!fd) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        return true;
      }
      if (err == EINTR) {
        continue;
      }
      if (on_error(err)) {
        return false;
      }
      continue;
    }
    if (failures_unreported_ > 0) {
      std::uint64_t suppressed = 0;
      if (recovery_log_.allow(suppressed)) {
        logs::net().info("accepting again listener={} failures={}", name_, failures_unreported_);
        failures_unreported_ = 0;
      }
    }
    on_accept_(
        accepted_connection{std::move(fd), endpoint_of(addr), std::chrono::steady_clock::now()});
  }
  return true;
}

// Anything but one peer's failure backs off: out of descriptors or kernel
// memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) above all, but also the
// unexpected, since the listen queue stays readable and retrying at once
// would spin.
bool acceptor::on_error(int err) {
  errors_for(err).inc();
  if (peer_failure(err)) {
    logs::net().debug("accept failed for one peer listener={} errno={}", name_, errno_name(err));
    return false;
  }
  ++failures_unreported_;
  std::uint64_t suppressed = 0;
  if (error_log_.allow(suppressed)) {
    logs::net().error(
        "accept failed listener={} errno={} reason=\"{}\" failures_since_last_line={} "
        "retry_in={}ms",
        name_, errno_name(err), std::strerror(err), suppressed + 1, backoff_.count());
  }
  return true;
}

metrics::counter& acceptor::errors_for(int err) {
  auto it = errors_.find(err);
  if (it == errors_.end()) {
    auto labels = "listener=\"" + name_ + "\",errno=\"" + errno_name(err) + "\"";
    it = errors_
             .emplace(err, &metrics::get_counter("locomov_accept_errors_total", labels,
                                                 "accept() failures by errno"))
             .first;
  }
  return *it->second;
}

}  // namespace locomov::net
