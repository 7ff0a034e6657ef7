#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "actors/acme_actor.hpp"
#include "actors/settings.hpp"
#include "capture/recorder.hpp"
#include "common/logging.hpp"
#include "net/tcp.hpp"
#include "net/tls_context.hpp"

namespace locomov::app {

/// Everything the daemon can be told, from conf/locomov.conf and the command
/// line. Durations are in the units their option names say.
struct options {
  std::filesystem::path state_dir = "/var/lib/locomov";
  std::string log_level = "info";
  logs::file_settings log_file;  // path empty: stderr
  bool daemon = false;           // fork to the background once ready
  std::filesystem::path pidfile;  // empty: none
  std::string user;               // as root: serve as this user once the ports are bound
  std::string group;              // its primary group instead of the user's own
  unsigned threads = 0;  // 0: one per core

  std::string packet_listen = "0.0.0.0";
  std::uint16_t packet_port = 38981;
  std::string plain_listen = "127.0.0.1";
  std::uint16_t plain_port = 0;  // 0: no plaintext listener
  std::string confo_listen = "0.0.0.0";
  std::uint16_t confo_port = 38979;  // 0: no confirmation port
  std::string status_listen = "127.0.0.1";
  std::uint16_t status_port = 38980;  // 0: no status endpoint

  net::tls_settings tls;
  std::vector<std::string> tls_names;  // self-signed certificate's names
  /// Certificates from an ACME CA (directory empty: off); dir is
  /// state-dir/acme.
  actors::acme_settings acme;
  /// How the CA validates the names: http-01, or tls-alpn-01 on the TLS
  /// listeners. "auto" is resolved by the parse: tls-alpn-01 when a TLS
  /// listener is on port 443 (where the CA connects), else http-01.
  std::string acme_challenge = "auto";
  std::string acme_http_listen = "0.0.0.0";
  std::uint16_t acme_http_port = 80;
  /// How often the certificate and key files are checked for a renewal; 0: never.
  std::chrono::milliseconds tls_watch_interval{std::chrono::seconds(5)};

  std::string db;  // empty: the embedded cluster
  int embedded_db_port = 5432;

  actors::connection_settings connection;
  actors::admission_settings admission;
  net::keepalive keepalive;
  actors::pub_settings pubs;
  actors::writer_settings writer;
  std::uint64_t spool_max_mb = 1024;  // 0: no spool
  /// How long SIGTERM waits for connections to answer what they read.
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(10)};
  actors::confo_settings confos;
  /// Record what the listeners read and write (docs/capture.md).
  bool capture = false;
  capture::recorder_settings capture_files;  // dir empty: state-dir/capture
};

/// Parses the command line, reading `--config FILE` first; options given on
/// the command line win over the file. Unknown keys in the file are errors.
/// Exits the process for --help, --version and usage errors (status 2).
options parse_options(int argc, char** argv);

/// Makes the path of `--config FILE` (or `--config=FILE`) in `argv`
/// absolute, so that a SIGHUP finds the same file after `--daemon` moved
/// to / (the other paths are resolved against the start folder by the
/// parse itself). Replaced arguments point into storage that lives for the process.
void pin_config_path(int argc, char** argv);

/// As parse_options, for SIGHUP: reads the same arguments and config file
/// again, but throws std::runtime_error saying what is wrong instead of
/// exiting, so a bad edit leaves the daemon running. Main thread only.
options reread_options(int argc, char** argv);

}  // namespace locomov::app
