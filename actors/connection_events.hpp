#pragma once

#include <string>

#include "common/log_limiter.hpp"
#include "common/metrics.hpp"

namespace locomov::actors {

/// The counters and log limiters one listener's connection actors share:
/// looked up once per listener, not per connection, and rate-limited per
/// listener, since a single peer can open connections that all time out.
struct connection_events {
  explicit connection_events(const std::string& listener)
      : handshake_timeouts(timed_out(listener, "handshake")),
        read_timeouts(timed_out(listener, "read")),
        idle_timeouts(timed_out(listener, "idle")) {}

  metrics::counter& handshake_timeouts;
  metrics::counter& read_timeouts;
  metrics::counter& idle_timeouts;
  logs::limiter handshake_timeout_log;
  logs::limiter read_timeout_log;
  logs::limiter idle_timeout_log;
  logs::limiter not_tls_log;
  logs::limiter tls_failure_log;

 private:
  static metrics::counter& timed_out(const std::string& listener, const char* deadline) {
    return metrics::get_counter("locomov_connections_timed_out_total",
                                "listener=\"" + listener + "\",deadline=\"" + deadline + "\"",
                                "Connections closed by a deadline");
  }
};

}  // namespace locomov::actors
