#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/reading.hpp"
#include "storage/pqxx_fwd.hpp"


namespace locomov::storage {

class guarded_connection;

/// Which column of `pub` the `id` of a packet names.
enum class pub_key {
  pub_id,  ///< the documented protocol (default)
  hash,    ///< what later firmware sends
};

/// One packet on its way to the database. When `quarantined` is false,
/// `pub_id` is the row of `pub` it belongs to (which may differ from
/// `value.id` under pub_key::hash); quarantined packets keep the id the
/// device sent, in a table without the foreign key.
struct stored_packet {
  protocol::reading value;
  std::int32_t pub_id = 0;
  bool quarantined = false;
};

/// What one write() did with its batch. packets + quarantined + duplicates
/// is the batch's size.
struct write_result {
  std::size_t packets = 0;      ///< rows inserted into `packet`
  std::size_t quarantined = 0;  ///< rows inserted into `quarantine`
  std::size_t duplicates = 0;   ///< already stored, or repeated in the batch: not inserted
  /// Packets meant for `packet` whose pub no longer exists (deleted after
  /// their pub actor looked it up), sent to `quarantine` under the device's
  /// id; counted in quarantined or duplicates as well.
  std::size_t vanished_pub = 0;
};

/// A database connection used by one writer actor (one thread). Not
/// thread-safe; libpqxx connections never are.
///
/// Every database call gives up after the store's timeout, on TCP and on
/// unix sockets alike (deadline_watchdog): it then throws
/// pqxx::broken_connection (pqxx::in_doubt_error when it was committing),
/// both retried by storage::classify, and the store is finished.
class packet_store {
 public:
  static constexpr std::chrono::milliseconds default_timeout{std::chrono::seconds(30)};

  /// Connects, giving up after `timeout` (libpq's connect_timeout, and for
  /// TCP keepalives and tcp_user_timeout; see conninfo_with_timeouts);
  /// throws pqxx::broken_connection when the database is unreachable.
  explicit packet_store(const std::string& conninfo,
                        std::chrono::milliseconds timeout = default_timeout);
  ~packet_store();

  packet_store(const packet_store&) = delete;
  packet_store& operator=(const packet_store&) = delete;

  /// Stores the batch exactly once. The fast path COPYs it straight into
  /// `packet` and `quarantine` in one transaction. When that fails on a
  /// unique key of migration 0002 (a packet already stored, or repeated in
  /// the batch) or on the foreign key (a pub deleted after its lookup), it
  /// is rolled back and the batch is written again through this
  /// connection's staging table: COPY there, then one statement inserts
  /// what the keys do not already hold (ON CONFLICT DO NOTHING) and sends
  /// packets whose pub_id has no row in `pub` to `quarantine` under
  /// `value.id`. When it returns, every packet of the batch is durable.
  /// Throws libpqxx's exceptions; after a throw nothing of the batch was
  /// committed unless the exception is pqxx::in_doubt_error. Either way the
  /// batch may be written again, on this or a new store: what was committed
  /// counts as duplicates.
  write_result write(const std::vector<stored_packet>& batch);

  /// Fills in the pub of packets routed unresolved under pub_key::hash
  /// (pub_id 0: their pub actor could not reach the database): pub_id from
  /// the `pub` row whose hash is the device id, or quarantined when none is.
  /// One lookup per distinct id.
  void resolve(std::vector<stored_packet>& batch);

  /// Looks up the pub a device id names: its pub_id, or nothing when no row
  /// of `pub` matches.
  std::optional<std::int32_t> find_pub(pub_key key, std::int32_t id);

  /// True while the underlying connection is open.
  bool connected() const;

  /// The server process of this connection (pg_backend_pid()), for logs.
  int backend_pid() const;

 private:
  /// Creates this connection's staging table and the statement that moves
  /// its rows; once, before the first batch that takes the staging path.
  void prepare_staging();

  /// The fast path: nothing when a key refused the batch (rolled back).
  std::optional<write_result> write_direct(const std::vector<stored_packet>& batch);

  /// The path that reconciles a batch with what the tables already hold.
  write_result write_staged(const std::vector<stored_packet>& batch);

  std::unique_ptr<guarded_connection> conn_;
  bool staging_ready_ = false;
  // COPY text of the batch being written, kept to reuse their capacity:
  // the rows for `packet` (or the whole batch, staged), those for `quarantine`.
  std::string copy_text_;
  std::string quarantine_text_;
};

}  // namespace locomov::storage
