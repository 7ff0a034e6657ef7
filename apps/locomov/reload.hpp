#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/admission.hpp"
#include "apps/locomov/options.hpp"
#include "net/tls_context.hpp"

namespace locomov::metrics {
class counter;
}

namespace locomov::app {

/// The TLS settings with the key pair to load: the configured files, or the
/// self-signed pair under state-dir/tls, made first if any of it is missing.
/// Throws std::runtime_error when the self-signed pair cannot be made.
net::tls_settings tls_files(const options& opts);

/// What SIGHUP changes in the running daemon. It reads the options again
/// from the start-up arguments and config file (the command line still
/// wins), builds a new TLS context, and gives both to the listeners for the
/// connections they accept afterwards; open connections keep their sessions
/// and the context those were made from. The log level, TLS files and
/// settings, connection deadlines and limits, keepalive and the shutdown
/// timeout change live; every other option keeps its start-up value, with a
/// warning naming it. A reload whose options, config file or key pair are
/// wrong changes nothing.
/// Not thread-safe: the main thread owns it, between signals.
class reloader {
 public:
  /// `argv` must outlive the reloader (main's arguments do). `running` are
  /// the options the daemon started with, `tls` the context it serves,
  /// `open_files` the soft descriptor limit that max-connections = 0
  /// derives its limit from.
  reloader(caf::actor_system& sys, int argc, char** argv, options running, net::ssl_ctx_ptr tls,
           std::vector<caf::actor> listeners, std::shared_ptr<actors::admission> places,
           std::uint64_t open_files);

  /// Reloads, logging what changed or why nothing did, and counting the
  /// outcome in locomov_config_reloads_total{result}. Never throws; blocks
  /// until every listener took the new settings.
  void reload();

  /// The certificate and key files served, to watch for renewals.
  std::vector<std::filesystem::path> certificate_files() const;

  /// Serves the certificate files' new contents to new handshakes, as
  /// SIGHUP would but touching nothing else; a pair that cannot be loaded
  /// (a renewal half written) keeps the running one, with a warning. Never
  /// throws; counts the outcome in locomov_certificate_reloads_total.
  void reload_certificate();

  /// The options in force: start-up's, with what reloads changed live.
  const options& current() const { return current_; }

 private:
  caf::actor_system& sys_;
  int argc_;
  char** argv_;
  options current_;
  net::ssl_ctx_ptr tls_;
  std::vector<caf::actor> listeners_;
  std::shared_ptr<actors::admission> places_;
  std::uint64_t open_files_;
  metrics::counter& succeeded_;
  metrics::counter& failed_;
};

}  // namespace locomov::app
