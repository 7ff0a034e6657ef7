#pragma once

#include <exception>

namespace locomov::storage {

/// What a database error means for the work that raised it.
enum class db_failure {
  transient,  ///< connection lost, deadlock, serialization, server shutting down: retry it whole
  refused,    ///< the statement itself is wrong for this data (constraint, type): retrying repeats it
  in_doubt,   ///< the connection broke during COMMIT: it may have committed
};

/// Classifies an exception thrown by libpqxx (or by code around it). Errors
/// that are not libpqxx's count as transient: a fresh connection is the
/// cheapest thing to try, and the caller's retry period bounds it.
db_failure classify(const std::exception& e);

}  // namespace locomov::storage
