#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>

#include "actors/admission.hpp"
#include "actors/connection_actor.hpp"
#include "actors/settings.hpp"
#include "net/tcp.hpp"
#include "net/tls_context.hpp"

namespace locomov::actors {

/// Where and how a listener accepts connections.
struct listener_settings {
  std::string name = "packet";     ///< appears in log lines
  service kind = service::packet;
  std::string host = "0.0.0.0";    ///< address to bind
  std::uint16_t port = 38981;      ///< 0 picks a free port (tests)
  net::ssl_ctx_ptr tls;            ///< null: plaintext (development only)
  connection_settings connection;
  net::keepalive keepalive;        ///< set on every accepted socket
  /// The places all listeners take their connections from; never null.
  std::shared_ptr<admission> places;
};

/// A listening socket and the broker that serves it.
struct listener {
  caf::actor broker;
  std::uint16_t port = 0;  ///< the bound port
};

/// Binds the socket (in the calling thread, so errors surface at start-up)
/// and spawns its broker and the broker's accept thread (net::acceptor),
/// which hands each new connection to the broker. The broker admits it
/// (`places`: when all are taken, it closes its own oldest connection still
/// in its TLS handshake to make room, else it refuses the new one; a peer
/// address over its share is refused), then only moves bytes between
/// sockets and connection actors, since every broker shares CAF's single
/// multiplexer thread. The broker's exit stops the accept thread and closes
/// the listening socket. Throws std::runtime_error when the address cannot
/// be bound. A (reconfig, listener_update) message (actors/messages.hpp)
/// changes the TLS context, connection settings and keepalive for the
/// connections accepted afterwards, and is answered `true` once it has.
listener start_listener(caf::actor_system& sys, const listener_settings& settings,
                        const connection_peers& peers);

}  // namespace locomov::actors
