#include "storage/schema.hpp"

#include <pqxx/connection_base>
#include <pqxx/nontransaction>
#include <pqxx/transaction>
#include <string>

#include "storage/migrations.hpp"

namespace locomov::storage {

namespace {

/// Key of the session advisory lock that serialises migrate() across
/// processes ("locomov" in ASCII, so it stands out in pg_locks).
constexpr const char* migration_lock_key = "30521770346639222";

/// Holds the migration lock for the life of the object. Session-level, so
/// it outlives each migration's transaction and also ends if the
/// connection drops.
class migration_lock {
 public:
  explicit migration_lock(pqxx::connection_base& conn) : conn_(conn) {
    pqxx::nontransaction tx(conn_);
    tx.exec(std::string("SELECT pg_advisory_lock(") + migration_lock_key + ")");
  }

  ~migration_lock() {
    try {
      pqxx::nontransaction tx(conn_);
      tx.exec(std::string("SELECT pg_advisory_unlock(") + migration_lock_key + ")");
    } catch (...) {
      // A broken connection has released the lock already.
    }
  }

  migration_lock(const migration_lock&) = delete;
  migration_lock& operator=(const migration_lock&) = delete;

 private:
  pqxx::connection_base& conn_;
};

int read_version(pqxx::transaction_base& tx) {
  const auto exists = tx.exec("SELECT to_regclass('schema_version') IS NOT NULL");
  if (!exists[0][0].as<bool>()) {
    return 0;
  }
  return tx.exec("SELECT coalesce(max(version), 0) FROM schema_version")[0][0].as<int>();
}

}  // namespace

int latest_schema_version() {
  return migration_count == 0 ? 0 : migrations[migration_count - 1].version;
}

int schema_version(pqxx::connection_base& conn) {
  pqxx::nontransaction tx(conn);
  return read_version(tx);
}

int migrate(pqxx::connection_base& conn) {
  return migrate(conn, latest_schema_version());
}

int migrate(pqxx::connection_base& conn, int up_to) {
  const migration_lock lock(conn);

  {
    pqxx::work tx(conn);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        "version integer PRIMARY KEY, "
        "applied_at timestamptz NOT NULL DEFAULT now())");
    tx.commit();
  }

  int version = schema_version(conn);
  for (std::size_t i = 0; i < migration_count; ++i) {
    const migration& m = migrations[i];
    if (m.version <= version) {
      continue;
    }
    if (m.version > up_to) {
      break;
    }
    pqxx::work tx(conn);
    tx.exec(std::string(m.sql));
    tx.exec_params("INSERT INTO schema_version (version) VALUES ($1)", m.version);
    tx.commit();
    version = m.version;
  }
  return version;
}

}  // namespace locomov::storage
