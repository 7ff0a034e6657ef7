#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>

#include "storage/embedded_cluster.hpp"

namespace locomov::test {

/// A private PostgreSQL cluster in a fresh folder under /tmp, for one test
/// binary: initdb is slow, so tests share one and take a fresh database
/// each. The destructor stops the server and removes the folder. A watcher
/// process does the same if the test binary dies without running it (crash,
/// abort, SIGKILL), so no server or folder outlives the binary. Not
/// thread-safe; create it from the main thread before tests start threads.
class pg_cluster {
 public:
  /// Creates the folder, initdb, starts the server. Throws on failure.
  pg_cluster();

  /// Stops the server, removes the folder; never throws.
  ~pg_cluster();

  pg_cluster(const pg_cluster&) = delete;
  pg_cluster& operator=(const pg_cluster&) = delete;

  /// The cluster of this test binary, started on first use and torn down
  /// when the binary exits.
  static pg_cluster& shared();

  /// conninfo of the cluster's default database, `locomov`.
  std::string conninfo() const;

  /// conninfo of database `dbname` of this cluster (which may not exist).
  std::string conninfo(const std::string& dbname) const;

  /// Creates a new, empty database with a unique name and returns its
  /// conninfo. Tests call it in SetUp for isolation; databases are never
  /// dropped, the whole cluster goes at exit.
  std::string fresh_database();

  /// Like fresh_database(), returning the database's name instead.
  std::string fresh_database_name();

  /// psql command line for the default database, for debugging a test.
  std::string psql_command() const { return cluster_->psql_command(); }

  const std::filesystem::path& dir() const { return dir_; }
  int port() const { return port_; }
  storage::embedded_cluster& cluster() { return *cluster_; }

 private:
  void start_watcher();
  void stop_watcher();

  std::filesystem::path dir_;
  int port_ = 0;
  std::unique_ptr<storage::embedded_cluster> cluster_;
  int watcher_fd_ = -1;  ///< write end of the pipe the watcher waits on
  pid_t watcher_pid_ = -1;
  int databases_created_ = 0;
};

/// Picks a TCP port the kernel reports free on 127.0.0.1 (bind to port 0).
/// Another process may take it before the caller binds it.
int free_port();

/// The single value `sql` returns from the database `conninfo` names, as a
/// number: for tests counting rows ("SELECT count(*) FROM packet").
long query_number(const std::string& conninfo, const std::string& sql);

}  // namespace locomov::test
