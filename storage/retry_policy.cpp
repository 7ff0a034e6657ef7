#include "storage/retry_policy.hpp"

#include <string>

#include <pqxx/except>

namespace locomov::storage {
namespace {

/// SQLSTATE classes that say nothing about the statement: connection
/// exceptions (08), transaction rollback (40), insufficient resources (53),
/// operator intervention such as an administrator's shutdown or
/// pg_terminate_backend (57), and lock_not_available (55P03).
bool transient_sqlstate(const std::string& state) {
  if (state.size() != 5) {
    return true;  // libpq reported it without a server's SQLSTATE: a connection problem
  }
  const auto cls = state.substr(0, 2);
  return cls == "08" || cls == "40" || cls == "53" || cls == "57" || state == "55P03";
}

}  // namespace

db_failure classify(const std::exception& e) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return db_failure::in_doubt;
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    return transient_sqlstate(sql->sqlstate()) ? db_failure::transient : db_failure::refused;
  }
  return db_failure::transient;
}

}  // namespace locomov::storage
