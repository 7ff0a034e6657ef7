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
        idle_timeouts(timed_out(listener, "idle")),
        handshakes_full(handshakes(listener, "full")),
        handshakes_resumed(handshakes(listener, "resumed")),
        handshakes_failed(handshakes(listener, "failed")),
        handshakes_not_tls(handshakes(listener, "not_tls")),
        frames_accepted(metrics::get_counter("locomov_frames_accepted_total",
                                             "listener=\"" + listener + "\"",
                                             "Frames (packets, confos) decoded and passed on")),
        frames_invalid(refused(listener, "invalid")),
        frames_undecodable(refused(listener, "undecodable")),
        frames_too_large(refused(listener, "too_large")),
        listener_(listener) {}

  metrics::counter& handshake_timeouts;
  metrics::counter& read_timeouts;
  metrics::counter& idle_timeouts;
  metrics::counter& handshakes_full;
  metrics::counter& handshakes_resumed;
  metrics::counter& handshakes_failed;   ///< OpenSSL refused it (no shared cipher, ...)
  metrics::counter& handshakes_not_tls;  ///< the peer sent something else (plaintext)
  metrics::counter& frames_accepted;     ///< valid: on its way to be stored or decided
  metrics::counter& frames_invalid;      ///< JSON, but not a valid packet or confo: !OK
  metrics::counter& frames_undecodable;  ///< not JSON: connection closed
  metrics::counter& frames_too_large;    ///< past max-frame: connection closed
  /// The failed handshakes of one OpenSSL reason ("no shared cipher"
  /// becomes reason="no_shared_cipher"). OpenSSL's reasons are a fixed set,
  /// so the series stay few; looked up per failure, which is rare next to
  /// handshakes that succeed.
  metrics::counter& handshake_failure(const std::string& openssl_reason) const {
    std::string label;
    for (char c : openssl_reason.substr(0, 48)) {
      const bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
      label.push_back(plain ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_');
    }
    return metrics::get_counter("locomov_tls_handshake_failures_total",
                                "listener=\"" + listener_ + "\",reason=\"" + label + "\"",
                                "Failed TLS handshakes by OpenSSL's reason");
  }

  logs::limiter handshake_timeout_log;
  logs::limiter read_timeout_log;
  logs::limiter idle_timeout_log;
  logs::limiter not_tls_log;
  logs::limiter tls_failure_log;

 private:
  std::string listener_;

  static metrics::counter& timed_out(const std::string& listener, const char* deadline) {
    return metrics::get_counter("locomov_connections_timed_out_total",
                                "listener=\"" + listener + "\",deadline=\"" + deadline + "\"",
                                "Connections closed by a deadline");
  }

  static metrics::counter& handshakes(const std::string& listener, const char* outcome) {
    return metrics::get_counter("locomov_tls_handshakes_total",
                                "listener=\"" + listener + "\",outcome=\"" + outcome + "\"",
                                "TLS handshakes by outcome");
  }

  static metrics::counter& refused(const std::string& listener, const char* reason) {
    return metrics::get_counter("locomov_frames_refused_total",
                                "listener=\"" + listener + "\",reason=\"" + reason + "\"",
                                "Frames (packets, confos) refused, by reason");
  }
};

}  // namespace locomov::actors
