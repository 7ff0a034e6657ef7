#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace locomov::storage {

/// A private PostgreSQL 15 cluster under a folder of ours: initdb on first
/// start, pg_ctl start/stop. It listens on a unix socket only (no TCP), in a
/// folder inside `dir`, and trusts local connections, so only the owner of
/// the socket (and root) can connect. When the process runs as root the
/// cluster's files belong to, and its server runs as, `service_user`
/// (`postgres` unless told otherwise), since postgres refuses to run as
/// root. A process that switches to `service_user` after start() can still
/// stop() it. Used by the daemon's embedded default and by the tests'
/// harness. Not thread-safe.
class embedded_cluster {
 public:
  struct options {
    std::filesystem::path dir;       ///< holds data/, socket/ and the server log
    int port = 5432;                 ///< names the socket file; no TCP listener
    std::string superuser = "locomov";
    std::string database = "locomov";
    std::filesystem::path bin_dir = "/usr/lib/postgresql/15/bin";
    /// The server's account when the process is root.
    std::string service_user = "postgres";
  };

  explicit embedded_cluster(options opts);

  /// Stops the server if this object started it.
  ~embedded_cluster();

  embedded_cluster(const embedded_cluster&) = delete;
  embedded_cluster& operator=(const embedded_cluster&) = delete;

  /// Creates the cluster and its database if missing, then starts the server
  /// and waits until it accepts connections. Throws std::runtime_error with
  /// the tail of the server log on failure.
  void start();

  /// How stop() shuts the server down.
  enum class stop_mode {
    fast,       ///< end sessions, write a checkpoint, exit (pg_ctl stop -m fast)
    immediate,  ///< exit at once, skipping the checkpoint; the next start recovers
                ///< from WAL. For clusters about to be deleted, such as tests'.
  };

  /// Shuts the server down and waits for it; a no-op when not running.
  void stop(stop_mode mode = stop_mode::fast);

  bool running() const { return running_; }

  /// libpq connection string for the database (socket folder, port, user, dbname).
  std::string conninfo() const;

  /// The psql command line that opens the database, for the start-up banner.
  std::string psql_command() const;

  const options& settings() const { return opts_; }

 private:
  std::filesystem::path data_dir() const;
  std::filesystem::path socket_dir() const;
  std::filesystem::path log_file() const;

  /// argv prefix that runs a PostgreSQL tool, through runuser when root.
  std::vector<std::string> command(const std::string& tool) const;

  /// Runs argv; throws with its output and the server log tail on failure.
  void run_checked(const std::vector<std::string>& argv, const std::string& what) const;

  void prepare_folders();
  void init_if_missing();
  void create_database_if_missing();

  options opts_;
  bool running_ = false;
  bool as_service_user_ = false;
};

}  // namespace locomov::storage
