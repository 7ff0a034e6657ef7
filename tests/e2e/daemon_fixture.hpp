#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/process.hpp"

namespace locomov::test {

/// A `locomov` daemon started as a user would start it, on loopback ports,
/// with its state folder in a fresh temporary directory.
class daemon {
 public:
  /// Starts the daemon with `extra` options and waits until it logs that it
  /// is ready (or throws with its output). Without "--db" in `extra`, the
  /// daemon starts its embedded database; without "--log-level", it logs at
  /// debug. `open_files`, when not 0, is its soft and hard descriptor limit.
  /// With "--log-file PATH" in `extra`, log() reads that file instead of the
  /// daemon's stderr; with "--packet-port N", the packet port is N rather
  /// than a free one.
  explicit daemon(const std::vector<std::string>& extra, std::uint64_t open_files = 0);
  ~daemon();

  int packet_port() const { return packet_port_; }
  int plain_port() const { return plain_port_; }
  int embedded_db_port() const { return embedded_db_port_; }
  int confo_port() const { return confo_port_; }
  /// The plain-HTTP status endpoint (/metrics, /readyz, ...) on 127.0.0.1.
  int status_port() const { return status_port_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  std::filesystem::path ca_file() const { return state_dir_ / "tls" / "ca.crt"; }
  process& proc() { return *proc_; }
  /// What the daemon has logged (to its current log file with --log-file).
  std::string log() const;

  /// How many lines of the log hold every one of `parts`.
  int log_lines_with(const std::vector<std::string>& parts) const;

  /// SIGTERM, then the exit status (or -1 if it did not end in 30 s).
  int stop();

  /// SIGKILL, as a crash or the OOM killer would; waits until it is gone.
  void kill();

  /// Starts the daemon again with the same options, ports and state folder
  /// (its spool, certificate and embedded cluster), once the last one has
  /// ended; waits until it is ready. Its log goes to a file of its own.
  void restart();

 private:
  void start_and_wait();

  std::vector<std::string> argv_;
  std::uint64_t open_files_ = 0;
  std::filesystem::path log_file_;
  int starts_ = 0;
  std::filesystem::path state_dir_;
  int packet_port_ = 0;
  int plain_port_ = 0;
  int confo_port_ = 0;
  int status_port_ = 0;
  int embedded_db_port_ = 0;
  std::unique_ptr<process> proc_;
};

/// Path of a binary built in this tree (set by CMake).
std::string locomov_binary();
std::string locomovctl_binary();

}  // namespace locomov::test
