#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>
#include <caf/io/connection_handle.hpp>

#include "actors/settings.hpp"
#include "net/tls_context.hpp"

namespace locomov::actors {

/// Who a connection is, for its actor and its log lines.
struct connection_info {
  caf::io::connection_handle hdl;
  std::uint64_t id = 0;  ///< unique per process, the `conn=` of log lines
  std::string peer;      ///< "address:port"
  std::string listener;  ///< "packet", ...
};

/// Spawns the scheduled actor that owns one connection: its TLS session
/// (none when `tls` is null, for the plaintext development listener), its
/// framing and decoding, and the order of its replies. It receives
/// (recv, bytes) and (peer_gone) from `broker` and sends back (out, hdl,
/// bytes), (close, hdl), (halt, hdl) and (resume, hdl). Decoded packets go to
/// `registry`; each is answered after its commit, in order. Runs on the
/// scheduler, so TLS and JSON work uses every core.
caf::actor spawn_connection_actor(caf::actor_system& sys, caf::actor broker, connection_info info,
                                  net::ssl_ctx_ptr tls, const connection_settings& settings,
                                  caf::actor registry);

}  // namespace locomov::actors
