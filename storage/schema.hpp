#pragma once

namespace pqxx {
class connection_base;
}

namespace locomov::storage {

/// Brings the schema to the newest version this build knows, applying each
/// missing migration in its own transaction and recording it in
/// `schema_version`. Safe to re-run and to run from several processes at
/// once (an advisory lock serialises them). Returns the resulting version.
int migrate(pqxx::connection_base& conn);

/// Like migrate(), stopping after version `up_to`: for tests of a migration
/// against data an older schema allowed.
int migrate(pqxx::connection_base& conn, int up_to);

/// The version recorded in `schema_version`, or 0 on an empty database.
int schema_version(pqxx::connection_base& conn);

/// The newest migration compiled into this build.
int latest_schema_version();

}  // namespace locomov::storage
