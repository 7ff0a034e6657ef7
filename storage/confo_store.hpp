#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/confo.hpp"

namespace locomov::storage {

class guarded_connection;

/// The leaf of the confo-arbiter's decision tree a confo reached.
enum class confo_branch {
  sub_pub_own,       ///< registered sub, pub exists and the sub is its creator
  sub_pub_conflict,  ///< registered sub, pub created by another sub: saved in cconfo
  sub_pub_claimed,   ///< registered sub, pub had no creator: the sub becomes it
  sub_new_pub,       ///< registered sub, new non-zero hash: pub created
  sub_no_hash,       ///< registered sub, hash 0 and no such pub: confo only
  csub_pub,          ///< unregistered email, pub exists
  csub_no_pub,       ///< unregistered email, no pub: confo only
};

/// Stable lower-case name of a branch, for logs and metrics ("sub_pub_own", ...).
const char* branch_name(confo_branch branch);

/// What one decision did, once committed.
struct confo_decision {
  confo_branch branch = confo_branch::csub_no_pub;
  bool conflict = false;       ///< saved in cconfo instead of confo
  std::int32_t pub_id = 0;     ///< the pub with the confo's hash, 0 when there is none
  bool pub_created = false;    ///< this decision inserted that pub
  bool creator_changed = false;  ///< set (claimed) or cleared (dangling) the pub's creator
  std::int64_t confo_id = 0;   ///< id of the row saved in confo or cconfo
};

/// One database connection used by the confo-arbiter (decisions) or by the
/// query actor (lookups); one thread at a time, as any libpqxx connection.
class confo_store {
 public:
  /// Connects; throws pqxx::broken_connection when the database is
  /// unreachable. Every call gives up after `timeout` (guarded_connection)
  /// and then throws pqxx::broken_connection or pqxx::in_doubt_error.
  explicit confo_store(const std::string& conninfo,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~confo_store();

  /// Decides the confo by the tree of issue 3 in one transaction and commits.
  /// Takes transaction-scoped advisory locks on the email, the hash and the
  /// (device name, ssid) pair, so several processes sharing the database
  /// decide one hash one at a time and "last received" follows commit order.
  /// Throws libpqxx's exceptions; nothing is committed unless it returns
  /// (or throws pqxx::in_doubt_error).
  confo_decision decide(const protocol::confo& c);

  /// The hash of the last confo saved in `confo` for the pair, by commit order.
  std::optional<std::int32_t> last_hash(const std::string& device_name, const std::string& ssid);

  /// True while the underlying connection is open.
  bool connected() const;

 private:
  std::unique_ptr<guarded_connection> conn_;
};

}  // namespace locomov::storage
