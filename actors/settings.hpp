#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "protocol/confo.hpp"
#include "storage/packet_store.hpp"

namespace locomov::storage {
class spool;
}  // namespace locomov::storage

namespace locomov::capture {
class recorder;
}  // namespace locomov::capture

namespace locomov::actors {

/// Limits a connection actor enforces on its peer.
struct connection_settings {
  /// Total time allowed for the TLS handshake, from accept.
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  /// Longest silence tolerated from the handshake's end until the first
  /// complete frame, and whenever a frame (or TLS record) is half received.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};
  /// Longest silence tolerated between frames: nothing half received and no
  /// reply owed. While locomov owes a reply, no silence counts.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(120)};
  /// A JSON value that grows past this many bytes without ending closes the connection.
  std::size_t max_frame = 64 * 1024;
  /// Packets awaiting their commit before the connection stops reading.
  std::size_t max_pending = 256;
  /// Coordinates for confos without usable `coords`.
  protocol::confo_defaults confo_defaults;
  /// Where the connection records what it reads and writes; null: nowhere.
  /// A connection keeps the recorder it was accepted with, so a capture
  /// turned on by SIGHUP holds whole connections only.
  std::shared_ptr<capture::recorder> capture;
};

/// How many connections the listeners admit, all of them together.
struct admission_settings {
  /// Overall; 0 derives it from the descriptor limit (default_max_connections).
  std::size_t max_connections = 0;
  /// From one peer address; 0: no limit. Meters behind one NAT share an
  /// address, so this is generous.
  std::size_t max_per_address = 256;
};

/// How pub actors find and route their packets.
struct pub_settings {
  storage::pub_key key = storage::pub_key::pub_id;
  /// A pub actor with no packet for this long stops; the next packet respawns it.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
};

/// How writers batch and persist.
struct writer_settings {
  std::string conninfo;
  std::size_t writers = 2;
  /// A batch is committed when it holds this many packets...
  std::size_t batch_max = 1000;
  /// ...or when its oldest packet has waited this long. Zero commits as soon
  /// as no further packet is queued for the writer.
  std::chrono::milliseconds batch_wait{0};
  /// How long a failing batch is retried (reconnecting) before its packets
  /// are reported as failed, when it cannot go to the spool either; the
  /// devices then get no acknowledgement.
  std::chrono::milliseconds retry_for{std::chrono::seconds(30)};
  /// Longest one database call may take; then the connection is cut and the
  /// batch goes to the spool.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
  /// Where batches go while the database is unreachable, shared by every
  /// writer and drained into the database in order; null: none.
  std::shared_ptr<storage::spool> spool;
};

/// How the confirmation port decides and answers.
struct confo_settings {
  std::string conninfo;
  /// Which column of `pub` packets name, so a pub the arbiter creates is
  /// announced to the pub actor its packets will reach.
  storage::pub_key key = storage::pub_key::pub_id;
  protocol::confo_defaults defaults;
  /// How long a decision is retried across database errors before the device
  /// gets `!OK`.
  std::chrono::milliseconds retry_for{std::chrono::seconds(30)};
  /// Longest one database call may take (the writers' write-timeout).
  std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
};

}  // namespace locomov::actors
