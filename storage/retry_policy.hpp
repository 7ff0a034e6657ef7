#pragma once

#include <exception>

namespace locomov::storage {

/// What a database error means for the work that raised it.
enum class db_failure {
  transient,  ///< connection lost, deadlock, serialization, server shutting down: retry it whole
  refused,    ///< the statement itself is wrong for this data (constraint, type): retrying repeats it
  /// The connection broke during COMMIT: it may have committed. Work that
  /// is idempotent, such as packet_store::write (its unique keys turn a
  /// repeat into duplicates), retries it as transient on a new connection;
  /// other work must not repeat it blindly.
  in_doubt,
};

/// Classifies an exception thrown by libpqxx (or by code around it). Errors
/// that are not libpqxx's count as transient: a fresh connection is the
/// cheapest thing to try, and the caller's retry period bounds it.
db_failure classify(const std::exception& e);

}  // namespace locomov::storage
