#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/reading.hpp"

// libpqxx 6.4 spells pqxx::connection as an alias of a template, so a plain
// `class connection;` would clash with <pqxx/connection>.
namespace pqxx {
class connect_direct;
template <typename CONNECTPOLICY>
class basic_connection_base;
using connection = basic_connection_base<connect_direct>;
}  // namespace pqxx

namespace locomov::storage {

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

/// A database connection used by one writer actor (one thread). Not
/// thread-safe; libpqxx connections never are.
class packet_store {
 public:
  /// Connects; throws pqxx::broken_connection when the database is unreachable.
  explicit packet_store(const std::string& conninfo);
  ~packet_store();

  /// Writes the batch in one transaction, with COPY into `packet` and
  /// `quarantine`, and commits. When it returns, every packet of the batch
  /// is durable. Throws libpqxx's exceptions; after a throw nothing of the
  /// batch was committed unless the exception is pqxx::in_doubt_error.
  void write(const std::vector<stored_packet>& batch);

  /// Looks up the pub a device id names: its pub_id, or nothing when no row
  /// of `pub` matches.
  std::optional<std::int32_t> find_pub(pub_key key, std::int32_t id);

  /// True while the underlying connection is open.
  bool connected() const;

 private:
  std::unique_ptr<pqxx::connection> conn_;
  // COPY text of the batch being written, kept to reuse their capacity.
  std::string packet_rows_;
  std::string quarantine_rows_;
};

}  // namespace locomov::storage
