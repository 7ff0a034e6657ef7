#include "apps/locomov/reload.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"

namespace locomov::app {
namespace {

/// An option as its key is written, and its value as text to compare and log.
struct option_view {
  const char* key;
  std::function<std::string(const options&)> value;
};

std::string text(const std::string& value) { return value; }
std::string text(const std::filesystem::path& value) { return value.string(); }

template <class Rep, class Period>
std::string text(std::chrono::duration<Rep, Period> value) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(value).count()) +
         "ms";
}

std::string text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::string text(const std::vector<std::string>& values) {
  std::string joined;
  for (const auto& v : values) {
    joined += (joined.empty() ? "" : ",") + v;
  }
  return joined;
}

template <class Number>
std::string text(Number value) {
  return std::to_string(value);
}

// Every option must be in one of the two lists below, or a reload neither
// applies a change to it nor says that it needs a restart.

/// What a reload applies: the listeners take it for new connections, or it
/// is read where it is used.
const std::vector<option_view>& live_options() {
  static const std::vector<option_view> list{
      {"log-level", [](const options& o) { return text(o.log_level); }},
      {"tls-cert", [](const options& o) { return text(o.tls.cert_file); }},
      {"tls-key", [](const options& o) { return text(o.tls.key_file); }},
      {"tls-min-version", [](const options& o) { return text(o.tls.min_version); }},
      {"tls-ciphers", [](const options& o) { return text(o.tls.ciphers); }},
      {"tls-ciphersuites", [](const options& o) { return text(o.tls.ciphersuites); }},
      {"tls-groups", [](const options& o) { return text(o.tls.groups); }},
      {"tls-names", [](const options& o) { return text(o.tls_names); }},
      {"tls-watch-interval", [](const options& o) { return text(o.tls_watch_interval); }},
      {"handshake-timeout", [](const options& o) { return text(o.connection.handshake_timeout); }},
      {"read-timeout", [](const options& o) { return text(o.connection.read_timeout); }},
      {"idle-timeout", [](const options& o) { return text(o.connection.idle_timeout); }},
      {"max-frame", [](const options& o) { return text(o.connection.max_frame); }},
      {"max-pending", [](const options& o) { return text(o.connection.max_pending); }},
      {"confo-default-lng",
       [](const options& o) { return text(o.connection.confo_defaults.longitude); }},
      {"confo-default-lat",
       [](const options& o) { return text(o.connection.confo_defaults.latitude); }},
      {"max-connections", [](const options& o) { return text(o.admission.max_connections); }},
      {"max-connections-per-address",
       [](const options& o) { return text(o.admission.max_per_address); }},
      {"keepalive-idle", [](const options& o) { return text(o.keepalive.idle); }},
      {"keepalive-interval", [](const options& o) { return text(o.keepalive.interval); }},
      {"keepalive-count", [](const options& o) { return text(o.keepalive.count); }},
      {"shutdown-timeout", [](const options& o) { return text(o.shutdown_timeout); }},
      {"capture", [](const options& o) { return text(o.capture); }},
      {"capture-dir", [](const options& o) { return text(o.capture_files.dir); }},
      {"capture-file-max-mb", [](const options& o) { return text(o.capture_files.max_bytes); }},
      {"capture-file-count", [](const options& o) { return text(o.capture_files.keep); }},
  };
  return list;
}

/// What is bound, opened or spawned once at start-up.
const std::vector<option_view>& restart_options() {
  static const std::vector<option_view> list{
      {"state-dir", [](const options& o) { return text(o.state_dir); }},
      {"threads", [](const options& o) { return text(o.threads); }},
      {"packet-listen", [](const options& o) { return text(o.packet_listen); }},
      {"packet-port", [](const options& o) { return text(o.packet_port); }},
      {"plain-listen", [](const options& o) { return text(o.plain_listen); }},
      {"plain-port", [](const options& o) { return text(o.plain_port); }},
      {"confo-listen", [](const options& o) { return text(o.confo_listen); }},
      {"confo-port", [](const options& o) { return text(o.confo_port); }},
      {"status-listen", [](const options& o) { return text(o.status_listen); }},
      {"status-port", [](const options& o) { return text(o.status_port); }},
      {"db", [](const options& o) { return text(o.db); }},
      {"embedded-db-port", [](const options& o) { return text(o.embedded_db_port); }},
      {"pub-key", [](const options& o) { return text(static_cast<int>(o.pubs.key)); }},
      {"pub-idle-timeout", [](const options& o) { return text(o.pubs.idle_timeout); }},
      {"writers", [](const options& o) { return text(o.writer.writers); }},
      {"batch-max", [](const options& o) { return text(o.writer.batch_max); }},
      {"batch-wait", [](const options& o) { return text(o.writer.batch_wait); }},
      {"write-retry-for", [](const options& o) { return text(o.writer.retry_for); }},
      {"write-timeout", [](const options& o) { return text(o.writer.write_timeout); }},
      {"spool-max-mb", [](const options& o) { return text(o.spool_max_mb); }},
      // The log sink is opened once, before the fork and the switch of user.
      {"log-file", [](const options& o) { return text(o.log_file.path); }},
      {"log-file-max-mb", [](const options& o) { return text(o.log_file.max_bytes); }},
      {"log-file-count", [](const options& o) { return text(o.log_file.keep); }},
      {"log-file-max-age", [](const options& o) { return text(o.log_file.max_age); }},
      {"daemon", [](const options& o) { return text(o.daemon); }},
      {"pidfile", [](const options& o) { return text(o.pidfile); }},
      {"user", [](const options& o) { return text(o.user); }},
      {"group", [](const options& o) { return text(o.group); }},
      {"acme-directory", [](const options& o) { return text(o.acme.directory); }},
      {"acme-email", [](const options& o) { return text(o.acme.email); }},
      {"acme-names", [](const options& o) { return text(o.acme.names); }},
      {"acme-ca-file", [](const options& o) { return text(o.acme.ca_file); }},
      {"acme-challenge", [](const options& o) { return text(o.acme_challenge); }},
      {"acme-http-listen", [](const options& o) { return text(o.acme_http_listen); }},
      {"acme-http-port", [](const options& o) { return text(o.acme_http_port); }},
      {"acme-key-type", [](const options& o) { return std::string(o.acme.rsa ? "rsa" : "ecdsa"); }},
      {"acme-renew-when-left", [](const options& o) { return text(o.acme.renew_when_left); }},
      {"acme-preferred-chain", [](const options& o) { return text(o.acme.preferred_chain); }},
  };
  return list;
}

/// The running options with the live ones taken from `next`.
options with_live_options(const options& running, const options& next) {
  options applied = running;
  applied.log_level = next.log_level;
  applied.tls = next.tls;
  // Challenges under way belong to the running ACME actor, not to the file.
  applied.tls.alpn_challenges = running.tls.alpn_challenges;
  applied.tls_names = next.tls_names;
  applied.tls_watch_interval = next.tls_watch_interval;
  applied.connection = next.connection;
  applied.admission = next.admission;
  applied.keepalive = next.keepalive;
  applied.shutdown_timeout = next.shutdown_timeout;
  applied.capture = next.capture;
  applied.capture_files = next.capture_files;
  return applied;
}

/// The served certificate's expiry as a gauge, for alerts before it comes.
void publish_certificate(SSL_CTX* ctx) {
  static auto& expiry = metrics::get_gauge(
      "locomov_certificate_expiry_timestamp_seconds", {},
      "When the certificate served to new handshakes expires (notAfter), unix seconds");
  expiry.set(net::certificate_not_after(ctx));
}

std::string joined_or_none(const std::vector<std::string>& keys) {
  return keys.empty() ? "none" : text(keys);
}

/// Sends `update` to every listener and waits for each to take it.
void update_listeners(caf::actor_system& sys, const std::vector<caf::actor>& listeners,
                      const actors::listener_update& update) {
  caf::scoped_actor self{sys};
  for (const auto& listener : listeners) {
    std::string failure;
    self->request(listener, std::chrono::seconds(10), actors::reconfigure_atom::value, update)
        .receive([](bool) {}, [&](const caf::error& e) { failure = sys.render(e); });
    if (!failure.empty()) {
      throw std::runtime_error("a listener did not take the new settings: " + failure);
    }
  }
}

}  // namespace

net::tls_settings tls_files(const options& opts) {
  auto tls = opts.tls;
  if (tls.cert_file.empty() && !opts.acme.directory.empty()) {
    const auto cert = actors::acme_cert_file(opts.acme);
    const auto key = actors::acme_key_file(opts.acme);
    if (std::filesystem::exists(cert) && std::filesystem::exists(key)) {
      tls.cert_file = cert;
      tls.key_file = key;
      return tls;
    }
    // Until the CA's first certificate arrives, the self-signed pair.
  }
  if (tls.cert_file.empty()) {
    auto made = net::ensure_self_signed(opts.state_dir / "tls", opts.tls_names);
    tls.cert_file = made.cert;
    tls.key_file = made.key;
  }
  return tls;
}

reloader::reloader(caf::actor_system& sys, int argc, char** argv, options running,
                   net::ssl_ctx_ptr tls, std::vector<caf::actor> listeners,
                   std::shared_ptr<actors::admission> places, std::uint64_t open_files)
    : sys_(sys),
      argc_(argc),
      argv_(argv),
      current_(std::move(running)),
      tls_(std::move(tls)),
      listeners_(std::move(listeners)),
      places_(std::move(places)),
      open_files_(open_files),
      succeeded_(metrics::get_counter("locomov_config_reloads_total", "result=\"ok\"",
                                      "Configuration reloads (SIGHUP), by outcome")),
      failed_(metrics::get_counter("locomov_config_reloads_total", "result=\"failed\"",
                                   "Configuration reloads (SIGHUP), by outcome")) {
  publish_certificate(tls_.get());
}

std::vector<std::filesystem::path> reloader::certificate_files() const {
  if (current_.tls.cert_file.empty() && !current_.acme.directory.empty()) {
    // Where the ACME actor writes, whether it has yet or not.
    return {actors::acme_cert_file(current_.acme), actors::acme_key_file(current_.acme)};
  }
  const auto tls = tls_files(current_);
  return {tls.cert_file, tls.key_file};
}

void reloader::reload_certificate() {
  static auto& reloaded = metrics::get_counter(
      "locomov_certificate_reloads_total", "result=\"ok\"",
      "Certificates taken from changed files, by outcome");
  static auto& refused = metrics::get_counter(
      "locomov_certificate_reloads_total", "result=\"failed\"",
      "Certificates taken from changed files, by outcome");
  try {
    auto ctx = net::make_server_context(tls_files(current_));
    const auto fingerprints = net::certificate_fingerprints(ctx.get());
    if (fingerprints == net::certificate_fingerprints(tls_.get())) {
      logs::app().info("certificate files changed, same certificate: nothing to reload");
      return;
    }
    update_listeners(sys_, listeners_, {ctx, current_.connection, current_.keepalive});
    tls_ = std::move(ctx);
    publish_certificate(tls_.get());
    reloaded.inc();
    logs::app().info("certificate reloaded reason=\"files changed\" certificate_sha256={}",
                     fingerprints.empty() ? "none" : fingerprints.front());
  } catch (const std::exception& e) {
    // A renewal caught between its two files, say: the next change retries.
    refused.inc();
    logs::app().warn(
        "certificate files changed but cannot be served, keeping the running certificate "
        "reason=\"{}\"",
        logs::one_line(e.what()));
  }
}

void reloader::reload() {
  logs::app().info("reloading configuration signal=SIGHUP");
  try {
    // Everything that can fail comes first, so a failure leaves all as it was.
    const options next = reread_options(argc_, argv_);
    const auto level = logs::parse_level(next.log_level);
    options applied = with_live_options(current_, next);
    // The self-signed pair stays where the running state dir has it.
    auto ctx = net::make_server_context(tls_files(applied));

    std::vector<std::string> changed;
    for (const auto& option : live_options()) {
      if (option.value(current_) != option.value(next)) {
        changed.emplace_back(option.key);
      }
    }
    const auto fingerprints = net::certificate_fingerprints(ctx.get());
    if (fingerprints != net::certificate_fingerprints(tls_.get())) {
      changed.emplace_back("certificate");
    }
    std::vector<std::string> needs_restart;
    for (const auto& option : restart_options()) {
      const auto running = option.value(current_);
      const auto configured = option.value(next);
      if (running != configured) {
        // The connection string may hold a password.
        const bool secret = std::string{option.key} == "db";
        logs::app().warn(
            "option needs a restart to change, keeping the running value option={} running={} "
            "configured={}",
            option.key, secret ? "(not shown)" : running, secret ? "(not shown)" : configured);
        needs_restart.emplace_back(option.key);
      }
    }

    // Unchanged TLS keeps the running context: a new one would have new
    // session ticket keys and an empty cache, so no meter could resume.
    const bool tls_changed =
        std::any_of(changed.begin(), changed.end(), [](const std::string& key) {
          return key == "certificate" || (key.rfind("tls-", 0) == 0 && key != "tls-names");
        });
    auto serving = tls_changed ? ctx : tls_;

    // The running recorder goes on while its files stay the same; a new one
    // opens its file here, so a folder it cannot write fails the reload.
    auto recording = current_.connection.capture;
    if (!applied.capture) {
      recording = nullptr;
    } else if (!recording || !(recording->settings() == applied.capture_files)) {
      recording = std::make_shared<capture::recorder>(applied.capture_files);
    }
    applied.connection.capture = recording;

    // The one step that can still fail, before those that cannot.
    update_listeners(sys_, listeners_, {serving, applied.connection, applied.keepalive});
    logs::set_level(level);
    const auto derived = actors::default_max_connections(open_files_);
    places_->set_limits(
        applied.admission.max_connections != 0 ? applied.admission.max_connections : derived,
        applied.admission.max_per_address);
    tls_ = std::move(serving);
    publish_certificate(tls_.get());
    // Open connections hold the old recorder: stopping it ends their
    // capture now, not when the last of them closes.
    if (current_.connection.capture && current_.connection.capture != recording) {
      current_.connection.capture->stop();
    }
    current_ = std::move(applied);

    succeeded_.inc();
    logs::app().info(
        "configuration reloaded changed={} needs_restart={} certificate_sha256={} "
        "max_connections={} max_connections_per_address={}",
        joined_or_none(changed), joined_or_none(needs_restart),
        fingerprints.empty() ? "none" : fingerprints.front(), places_->max_total(),
        places_->max_per_address());
  } catch (const std::exception& e) {
    failed_.inc();
    logs::app().error(
        "configuration reload failed, still running on the previous configuration reason=\"{}\"",
        logs::one_line(e.what()));
  }
}

}  // namespace locomov::app
