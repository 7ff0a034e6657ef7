#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/io/connection_handle.hpp>

#include "actors/settings.hpp"
#include "net/tls_context.hpp"

namespace locomov::actors {

struct connection_events;

/// What a listener serves.
enum class service {
  packet,  ///< meters' readings
  confo,   ///< meters' confirmations, and the app's HTTPS query
};

/// The actors connection actors hand their work to.
struct connection_peers {
  caf::actor registry;  ///< pub registry: packets
  caf::actor arbiter;   ///< confo-arbiter: confirmations
  caf::actor query;     ///< the app's queries
};

/// Who a connection is, for its actor and its log lines.
struct connection_info {
  caf::io::connection_handle hdl;
  std::uint64_t id = 0;  ///< unique per process, the `conn=` of log lines
  std::string peer;      ///< "address:port", "[v6 address]:port"
  std::string listener;  ///< "packet", ...
  service kind = service::packet;
  std::chrono::steady_clock::time_point accepted_at;  ///< the handshake deadline counts from here
};

/// Spawns the scheduled actor that owns one connection: its TLS session
/// (none when `tls` is null, for the plaintext development listener), its
/// framing and decoding, and the order of its replies. It receives
/// (recv, bytes) and (peer_gone) from `broker` and sends back (out, hdl,
/// bytes), (close, hdl), (halt, hdl), (resume, hdl) and, once its TLS
/// handshake completed, (tls_done, hdl). Decoded packets go to
/// the registry, confos to the arbiter, HTTP queries to the query actor; each
/// frame is answered in order, a packet after its commit. Silence closes
/// it: the handshake deadline counts from accept, the read deadline until
/// the first frame and inside one, the idle deadline between frames, and
/// none while a reply is owed. `events` are its listener's counters and log
/// limiters. Runs on the scheduler, so TLS and JSON work uses every core.
caf::actor spawn_connection_actor(caf::actor_system& sys, caf::actor broker, connection_info info,
                                  net::ssl_ctx_ptr tls, const connection_settings& settings,
                                  const connection_peers& peers,
                                  std::shared_ptr<connection_events> events);

}  // namespace locomov::actors
