#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "actors/replay.hpp"
#include "apps/locomovctl/client_connection.hpp"
#include "capture/record.hpp"

namespace locomov::ctl {

/// Where a live replay sends each recorded listener's connections.
struct live_target {
  std::string host = "127.0.0.1";
  std::uint16_t packet_port = 38981;  ///< `packet` connections, over TLS
  std::uint16_t confo_port = 38979;   ///< `confo` connections, over TLS
  std::uint16_t plain_port = 0;       ///< `plain` connections, plain TCP; 0: skipped
  client_tls_settings tls;
  std::string servername;  ///< checked against the certificate; empty: host
  /// Connections open at once, at most; a capture's later ones wait.
  std::size_t max_connections = 256;
};

/// What a live replay did, as replay_report, plus what a load generator
/// reports.
struct live_report {
  actors::replay_report replies;
  std::size_t connections_failed = 0;
  std::size_t connections_skipped = 0;  ///< `plain` ones without a plain port
  std::vector<std::string> failures;    ///< the first few, with their reason
  double p50_ms = 0;  ///< from a read's write to its last reply
  double p99_ms = 0;
};

/// Sends the recorded connections of `records` to a running locomov, each
/// over a connection of its own with its recorded reads, one write per
/// read, in the recorded order; at `settings.speed` > 0 at the recorded
/// pace. Packet connections run side by side, up to
/// `target.max_connections` at once; confirmation-port connections one at a
/// time, so that decisions are taken in the recorded order. A recorded close_notify or close by the peer ends the connection
/// once the replies recorded before it came. Replies are compared as the
/// in-process replay compares them. Blocks until every connection ended.
live_report replay_live(const std::vector<capture::record>& records,
                        const actors::replay_settings& settings, const live_target& target);

}  // namespace locomov::ctl
