#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/connection_actor.hpp"
#include "actors/settings.hpp"
#include "capture/record.hpp"

namespace locomov::actors {

/// How a capture is fed back into the actors.
struct replay_settings {
  /// 0: as fast as the actors take it; 1: at the recorded pace; 10: ten
  /// times faster.
  double speed = 0;
  /// Packets' ids (the `id` key, in any spelling) rewritten: first by this
  /// map, then shifted by `id_offset`.
  std::map<std::int64_t, std::int64_t> id_map;
  std::int64_t id_offset = 0;
  /// Added to every recorded time: receipts, `timestamp` (rounded to whole
  /// seconds) and `timestr` of packets and confos.
  std::int64_t time_shift_us = 0;
  /// The limits of the connection actors (the daemon's defaults).
  connection_settings connection;
  /// Longest wait for a reply the capture says came, before the replay
  /// counts it missing and goes on.
  std::chrono::milliseconds reply_timeout{std::chrono::seconds(10)};
  /// Differences kept for the report.
  std::size_t differences_kept = 5;
};

/// A reply the replay gave that is not the recorded one.
struct reply_difference {
  std::uint64_t conn = 0;
  std::string listener;
  std::size_t index = 0;  ///< the reply's place on its connection, from 0
  std::string recorded;   ///< empty: the capture has none here
  std::string replayed;   ///< empty: the replay gave none
};

/// What a replay did.
struct replay_report {
  std::size_t connections = 0;
  std::size_t reads = 0;
  std::uint64_t bytes = 0;
  std::size_t replies_recorded = 0;
  std::size_t replies_matching = 0;
  std::size_t replies_differing = 0;  ///< recorded and replayed, not equal
  std::size_t replies_missing = 0;    ///< recorded, not replayed
  std::size_t replies_extra = 0;      ///< replayed, not recorded
  std::size_t packets_acknowledged = 0;  ///< `Thank you.` replayed
  std::vector<reply_difference> differences;  ///< the first few
  double seconds = 0;
};

/// Feeds `records` (capture::read_files) into connection actors as the
/// network would, without sockets or TLS: each recorded connection gets a
/// connection actor of its listener's kind that sends its work to `peers`;
/// each recorded read reaches it as one read, with its recorded receipt
/// time; a recorded close_notify or close ends it as the peer did. Reads
/// follow the recorded order. So that decisions come out as they did, a
/// read waits for the replies to confirmation-port requests recorded
/// before it (the confo-arbiter's order), and a connection's end waits for
/// the replies recorded before it; packets on different connections run
/// side by side. Blocks until every connection has ended or timed out, and
/// compares each connection's replies with the recorded ones, one reply a
/// line (an HTTP response a reply, its Date header ignored).
replay_report replay(caf::actor_system& sys, const connection_peers& peers,
                     const std::vector<capture::record>& records,
                     const replay_settings& settings);

/// `frame` with the rewrites of `settings` (ids, times) applied, or
/// unchanged when it is not a JSON object or nothing applies. Exposed for
/// tests.
std::string rewrite_frame(const std::string& frame, const replay_settings& settings);

}  // namespace locomov::actors
