#pragma once

// The messages locomov's actors exchange. They never leave the process (no
// CAF remoting), so they are allowed as unsafe (not serializable) types.

#include <cstdint>
#include <memory>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "actors/settings.hpp"
#include "net/tcp.hpp"
#include "net/tls_context.hpp"
#include "protocol/confo.hpp"
#include "protocol/reading.hpp"
#include "storage/packet_store.hpp"

namespace locomov::actors {

// Between a listener broker and its connection actors.
using recv_atom = caf::atom_constant<caf::atom("recv")>;        ///< (recv, bytes): from the peer
using out_atom = caf::atom_constant<caf::atom("out")>;          ///< (out, hdl, bytes): to the peer
using close_atom = caf::atom_constant<caf::atom("close")>;      ///< (close, hdl)
using halt_atom = caf::atom_constant<caf::atom("halt")>;        ///< (halt, hdl): stop reading
using resume_atom = caf::atom_constant<caf::atom("resume")>;    ///< (resume, hdl)
/// (peer_gone): the socket is closed, by the peer or by the listener
/// making room; the actor stops without writing.
using peer_gone_atom = caf::atom_constant<caf::atom("peer_gone")>;
/// (shut): from a replay, the peer ended its sending as a TLS close_notify
/// does; owed replies still go out, then the connection closes. A replay
/// sends (recv, bytes, receipt_us) too, the captured read with its time.
using shut_atom = caf::atom_constant<caf::atom("shut")>;
// Graceful shutdown: (drain) to a listener stops accepting and drains its
// connections; (drain) to a connection actor stops reading, answers what was
// read, then closes; (drained) is the connection actor's note to itself once
// the reads queued before the drain were handled.
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using drained_atom = caf::atom_constant<caf::atom("drained")>;
/// (tls_done, hdl): the handshake completed, so the connection is no longer
/// the first to close when the listeners are full.
using tls_done_atom = caf::atom_constant<caf::atom("tls_done")>;

/// (ping) -> ping: the watchdog's question to listeners and the registry.
using ping_atom = caf::atom_constant<caf::atom("ping")>;

// From a listener's accept thread to its broker.
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;  ///< (adopt, accepted_ptr)

/// A connection the accept thread took, on its way to the broker. Shared,
/// since messages must be copyable; the descriptor closes with the last
/// copy unless the broker took it, so none leaks if the broker is gone.
using accepted_ptr = std::shared_ptr<net::accepted_connection>;

/// (reconfig, listener_update) -> bool, to a listener: what SIGHUP reloaded.
using reconfigure_atom = caf::atom_constant<caf::atom("reconfig")>;

/// The settings a listener gives the connections it accepts from the moment
/// it handles this message. Connections already open keep theirs: each holds
/// its own reference to the TLS context its session was made from, so the
/// old context lives until the last of them closes.
struct listener_update {
  net::ssl_ctx_ptr tls;  ///< never null; the plaintext listener ignores it
  connection_settings connection;
  net::keepalive keepalive;
};

// Timers.
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;

// Replies to connection actors: (stored, seq) once committed, (failed, seq)
// when it cannot be stored.
using stored_atom = caf::atom_constant<caf::atom("stored")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;

// Pub actors and their registry.
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using pub_known_atom = caf::atom_constant<caf::atom("pub_known")>;

// The confirmation port: (decide, confo) -> bool committed, to the
// confo-arbiter; (query, device_name, ssid) -> (bool found, int32 hash).
using decide_atom = caf::atom_constant<caf::atom("decide")>;
using query_atom = caf::atom_constant<caf::atom("query")>;

/// A decoded packet on its way from a connection actor to its pub actor.
/// `seq` orders the connection's replies; the reply goes to `reply_to`.
struct packet_msg {
  protocol::reading value;
  caf::actor reply_to;
  std::uint64_t seq = 0;
};

/// A packet routed by its pub actor to a writer.
struct write_msg {
  storage::stored_packet packet;
  caf::actor reply_to;
  std::uint64_t seq = 0;
};

}  // namespace locomov::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(locomov::actors::accepted_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(locomov::actors::listener_update)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(locomov::actors::packet_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(locomov::actors::write_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(locomov::protocol::confo)
