#include "apps/locomov/options.hpp"

#include <cctype>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include <CLI/CLI.hpp>
#include <unistd.h>

namespace locomov::app {
namespace {

std::vector<std::string> default_names() {
  std::vector<std::string> names{"localhost", "127.0.0.1", "::1"};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0' &&
      std::string(host) != "localhost") {
    names.emplace_back(host);
  }
  return names;
}

/// A duration option given in `unit` ("days", "seconds" or "milliseconds"),
/// whatever resolution the setting keeps internally.
/// An option in megabytes, fractions allowed, kept in bytes; its default is
/// what `target` holds.
CLI::Option* add_megabytes(CLI::App& app, const std::string& name, std::uint64_t& target,
                           const std::string& help) {
  const double current = static_cast<double>(target) / (1 << 20);
  std::ostringstream shown;
  shown << current;
  return app
      .add_option_function<double>(
          name, [&target](double mb) { target = static_cast<std::uint64_t>(mb * (1 << 20)); },
          help)
      ->default_str(shown.str())
      ->check(CLI::Range(0.001, 1024.0 * 1024, "FLOAT in [0.001 - 1048576]"));
}

template <class Rep, class Period>
CLI::Option* add_duration(CLI::App& app, const std::string& name,
                          std::chrono::duration<Rep, Period>& target, const std::string& unit,
                          const std::string& help) {
  using target_type = std::chrono::duration<Rep, Period>;
  const double unit_seconds = unit == "milliseconds" ? 0.001 : (unit == "days" ? 86400.0 : 1.0);
  auto* opt = app.add_option_function<double>(
      name,
      [&target, unit_seconds](double value) {
        target = std::chrono::duration_cast<target_type>(
            std::chrono::duration<double>(value * unit_seconds));
      },
      help + " (" + unit + ")");
  const double current = std::chrono::duration<double>(target).count() / unit_seconds;
  std::ostringstream shown;
  shown << current;
  opt->default_str(shown.str());
  opt->check(CLI::NonNegativeNumber);
  return opt;
}

/// The old Go server's glog flag `-stderrthreshold=LEVEL` (also with two
/// dashes, or the level as the next argument) as `--log-level`, so existing
/// service files keep working. glog's levels map to spdlog's.
std::vector<std::string> with_glog_flags_translated(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    const auto dashes = a.rfind("--", 0) == 0 ? 2u : (a.rfind('-', 0) == 0 ? 1u : 0u);
    if (dashes == 0 || a.compare(dashes, 15, "stderrthreshold") != 0) {
      continue;
    }
    std::string level;
    if (a.size() > dashes + 15 && a[dashes + 15] == '=') {
      level = a.substr(dashes + 16);
    } else if (a.size() == dashes + 15 && i + 1 < args.size()) {
      level = args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    } else {
      continue;
    }
    for (auto& c : level) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (level == "0") {
      level = "info";
    } else if (level == "warning" || level == "1") {
      level = "warn";
    } else if (level == "2") {
      level = "error";
    } else if (level == "fatal" || level == "3") {
      level = "critical";
    }
    a = "--log-level=" + level;
  }
  return args;
}

/// What to do when the arguments or the config file are wrong.
enum class on_error { exit, throw_error };

options parse(int argc, char** argv, on_error errors) {
  options o;
  o.tls_names = default_names();
  CLI::App app{"locomov: ingest server for Wi-Fi energy meters"};
  app.set_version_flag("--version", "locomov 0.1.0");
  app.set_config("--config", "", "Read options from this file (keys are option names)");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.get_formatter()->column_width(36);

  app.add_option("--state-dir", o.state_dir, "Folder for the embedded database and certificate")
      ->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str();
  app.add_option("--log-file", o.log_file.path,
                 "Log to this file, rotated by size, instead of stderr; empty: stderr");
  add_megabytes(app, "--log-file-max-mb", o.log_file.max_bytes,
                "Size at which the log file is rotated (fractions allowed: 0.5 is 512 KiB)");
  app.add_option("--log-file-count", o.log_file.keep,
                 "Rotated log files kept beside the current one; 0 keeps none")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  add_duration(app, "--log-file-max-age", o.log_file.max_age, "days",
               "Rotated log files older than this are deleted; 0 means no age limit");
  app.add_flag("--capture", o.capture,
               "Record what every listener reads (after TLS) and answers, as JSON lines, for "
               "locomovctl replay");
  app.add_option("--capture-dir", o.capture_files.dir,
                 "Folder of the capture files; empty: state-dir/capture");
  add_megabytes(app, "--capture-file-max-mb", o.capture_files.max_bytes,
                "Size at which the capture file is rotated (fractions allowed)");
  app.add_option("--capture-file-count", o.capture_files.keep,
                 "Rotated capture files kept beside the current one; 0 keeps none")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_flag("--daemon", o.daemon,
               "Run in the background: the command returns once locomov serves (status 0) or "
               "has failed to start (status 1, with the reason); needs --log-file");
  app.add_option("--pidfile", o.pidfile,
                 "Write the process id to this file, locked while locomov runs; a second "
                 "locomov with the same file refuses to start");
  app.add_option("--user", o.user,
                 "When started as root, serve as this user once the ports are bound; the "
                 "embedded PostgreSQL then runs as this user too");
  app.add_option("--group", o.group, "Primary group for --user instead of the user's own");
  app.add_option("--threads", o.threads, "Scheduler threads; 0 means one per core")
      ->capture_default_str();

  app.add_option("--packet-listen", o.packet_listen, "Address of the TLS packet port")
      ->capture_default_str();
  app.add_option("--packet-port", o.packet_port, "TLS packet port")->capture_default_str();
  app.add_option("--plain-listen", o.plain_listen, "Address of the plaintext packet port")
      ->capture_default_str();
  app.add_option("--plain-port", o.plain_port,
                 "Plaintext packet port for development; 0 turns it off")
      ->capture_default_str();
  app.add_option("--confo-listen", o.confo_listen,
                 "Address of the TLS confirmation port (devices' confos, the app's queries)")
      ->capture_default_str();
  app.add_option("--confo-port", o.confo_port, "TLS confirmation port; 0 turns it off")
      ->capture_default_str();
  app.add_option("--status-listen", o.status_listen,
                 "Address of the plain-HTTP status endpoint (/metrics, /stats, /healthz, "
                 "/readyz); keep it on loopback or a management network")
      ->capture_default_str();
  app.add_option("--status-port", o.status_port, "Status endpoint port; 0 turns it off")
      ->capture_default_str();
  app.add_option("--confo-default-lng", o.confos.defaults.longitude,
                 "Longitude stored for a confo without usable coords")
      ->capture_default_str()
      ->check(CLI::Range(-180.0, 180.0));
  app.add_option("--confo-default-lat", o.confos.defaults.latitude,
                 "Latitude stored for a confo without usable coords")
      ->capture_default_str()
      ->check(CLI::Range(-90.0, 90.0));

  app.add_option("--tls-cert", o.tls.cert_file,
                 "Certificate chain (PEM); empty makes a self-signed one under the state dir");
  app.add_option("--tls-key", o.tls.key_file, "Private key (PEM) of --tls-cert");
  app.add_option("--tls-min-version", o.tls.min_version, "TLSv1.2 or TLSv1.3")
      ->capture_default_str();
  app.add_option("--tls-ciphers", o.tls.ciphers, "TLS 1.2 cipher list (OpenSSL syntax)")
      ->capture_default_str();
  app.add_option("--tls-ciphersuites", o.tls.ciphersuites, "TLS 1.3 suites (OpenSSL syntax)")
      ->capture_default_str();
  app.add_option("--tls-groups", o.tls.groups, "Key exchange groups in preference order")
      ->capture_default_str();
  app.add_option("--tls-names", o.tls_names, "Names and addresses of the self-signed certificate")
      ->delimiter(',');

  app.add_option("--db", o.db,
                 "libpq connection string; empty starts the embedded PostgreSQL cluster. "
                 "Give the password with PGPASSWORD or ~/.pgpass, not here");
  app.add_option("--embedded-db-port", o.embedded_db_port,
                 "Port naming the embedded cluster's unix socket (it has no TCP listener)")
      ->capture_default_str();

  app.add_option("--acme-directory", o.acme.directory,
                 "Obtain and renew the certificate from this ACME directory URL (Let's Encrypt: "
                 "https://acme-v02.api.letsencrypt.org/directory); empty: off");
  app.add_option("--acme-email", o.acme.email, "Contact of the ACME account");
  app.add_option("--acme-names", o.acme.names,
                 "Names of the certificate, comma separated; the first is what devices without "
                 "SNI get")
      ->delimiter(',');
  app.add_option("--acme-ca-file", o.acme.ca_file,
                 "Trust for the ACME CA's own HTTPS (a test CA); empty: the system's");
  app.add_option("--acme-challenge", o.acme_challenge,
                 "How the CA validates the names: http-01 (on acme-http-port), tls-alpn-01 (on "
                 "the TLS ports; the CA connects to 443), or auto: tls-alpn-01 when the packet or "
                 "confirmation port is 443, else http-01")
      ->check(CLI::IsMember({"auto", "http-01", "tls-alpn-01"}))
      ->default_str("auto");
  app.add_option("--acme-http-listen", o.acme_http_listen, "Address for HTTP-01 challenges")
      ->capture_default_str();
  app.add_option("--acme-http-port", o.acme_http_port,
                 "Port for HTTP-01 challenges (the CA connects to 80); bound before dropping root")
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--acme-key-type", [&o](const std::string& t) { o.acme.rsa = t == "rsa"; },
         "Key of the certificate: rsa (RSA-2048, what the fleet needs) or ecdsa (P-256)")
      ->check(CLI::IsMember({"rsa", "ecdsa"}))
      ->default_str("rsa");
  app.add_option("--acme-renew-when-left", o.acme.renew_when_left,
                 "Renew once this fraction of the certificate's lifetime is left")
      ->check(CLI::Range(0.01, 0.99))
      ->capture_default_str();
  app.add_option("--acme-preferred-chain", o.acme.preferred_chain,
                 "Common name of the root the served chain must end at, among the CA's "
                 "alternate chains; empty: the CA's default chain");
  add_duration(app, "--tls-watch-interval", o.tls_watch_interval, "seconds",
               "How often the certificate and key files are checked; a renewal (a changed "
               "file, a swapped symlink) is served to new handshakes; 0: only on SIGHUP");
  add_duration(app, "--handshake-timeout", o.connection.handshake_timeout, "seconds",
               "Total time allowed for a TLS handshake");
  add_duration(app, "--read-timeout", o.connection.read_timeout, "seconds",
               "Silence tolerated after the handshake until a first complete packet, and "
               "inside a packet");
  add_duration(app, "--idle-timeout", o.connection.idle_timeout, "seconds",
               "Silence tolerated between packets, once every reply is sent");
  app.add_option("--max-connections", o.admission.max_connections,
                 "Connections all listeners together may hold; 0 derives it from the "
                 "descriptor limit")
      ->capture_default_str();
  app.add_option("--max-connections-per-address", o.admission.max_per_address,
                 "Connections one peer address may hold (meters behind a NAT share one); "
                 "0 means no limit")
      ->capture_default_str();
  add_duration(app, "--keepalive-idle", o.keepalive.idle, "seconds",
               "Silence before TCP keepalive probes a connection; 0 turns keepalive off")
      ->check(CLI::Range(0.0, 32767.0));
  add_duration(app, "--keepalive-interval", o.keepalive.interval, "seconds",
               "Time between unanswered keepalive probes")
      ->check(CLI::Range(1.0, 32767.0));
  app.add_option("--keepalive-count", o.keepalive.count,
                 "Unanswered keepalive probes before the kernel drops the connection")
      ->check(CLI::Range(1, 127))
      ->capture_default_str();
  app.add_option("--max-frame", o.connection.max_frame,
                 "Bytes a JSON value may reach before the connection is closed")
      ->capture_default_str();
  app.add_option("--max-pending", o.connection.max_pending,
                 "Packets a connection may have awaiting commit before it stops reading")
      ->capture_default_str();

  std::string pub_key = "pub_id";
  app.add_option("--pub-key", pub_key, "Column of pub that a packet's id names: pub_id or hash")
      ->check(CLI::IsMember({"pub_id", "hash"}))
      ->capture_default_str();
  add_duration(app, "--pub-idle-timeout", o.pubs.idle_timeout, "seconds",
               "A device's actor stops after this long without packets");

  app.add_option("--writers", o.writer.writers, "Writer actors, each with its own connection")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--batch-max", o.writer.batch_max, "Packets per committed batch at most")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  add_duration(app, "--batch-wait", o.writer.batch_wait, "milliseconds",
               "Longest a packet waits for its batch to fill; 0 commits as soon as the "
               "writer's queue is empty");
  add_duration(app, "--write-retry-for", o.writer.retry_for, "seconds",
               "How long a failing batch the spool cannot take, or a confo decision, is "
               "retried before it is given up");
  add_duration(app, "--write-timeout", o.writer.write_timeout, "seconds",
               "Longest one database call may take before it is abandoned (a stalled or "
               "unreachable database)");
  add_duration(app, "--shutdown-timeout", o.shutdown_timeout, "seconds",
               "On SIGTERM, how long connections may take to answer what they have read "
               "before they are closed; a second SIGTERM or SIGINT cuts it short");
  app.add_option("--spool-max-mb", o.spool_max_mb,
                 "Size bound of the spool under state-dir/spool that takes packets while the "
                 "database is unreachable; 0 turns the spool off")
      ->capture_default_str();

  auto args = with_glog_flags_translated(argc, argv);
  std::vector<char*> args_c;
  for (auto& a : args) {
    args_c.push_back(a.data());
  }
  try {
    app.parse(static_cast<int>(args_c.size()), args_c.data());
  } catch (const CLI::ParseError& e) {
    if (errors == on_error::throw_error) {
      throw std::runtime_error(e.what());
    }
    std::exit(app.exit(e) == 0 ? 0 : 2);
  }
  o.pubs.key = pub_key == "hash" ? storage::pub_key::hash : storage::pub_key::pub_id;
  o.confos.key = o.pubs.key;
  o.confos.retry_for = o.writer.retry_for;
  o.confos.write_timeout = o.writer.write_timeout;
  o.connection.confo_defaults = o.confos.defaults;
  if (o.daemon && o.log_file.path.empty()) {
    std::cerr << "locomov: --daemon needs --log-file: a daemon's stderr is /dev/null\n";
    std::exit(2);
  }
  // A daemon works from /, so relative paths are taken from where
  // locomov was started, before it moved: the first parse (at start, before
  // the fork) fixes that folder for the rereads of SIGHUP.
  static const std::filesystem::path started_in = std::filesystem::current_path();
  for (auto* path :
       {&o.state_dir, &o.log_file.path, &o.pidfile, &o.tls.cert_file, &o.tls.key_file,
        &o.capture_files.dir}) {
    if (!path->empty() && path->is_relative()) {
      *path = started_in / *path;
    }
  }
  o.acme.dir = o.state_dir / "acme";
  if (o.acme_challenge == "auto") {
    o.acme_challenge = o.packet_port == 443 || o.confo_port == 443 ? "tls-alpn-01" : "http-01";
  }
  if (!o.acme.directory.empty() && o.acme.names.empty()) {
    const char* message = "--acme-directory needs --acme-names";
    if (errors == on_error::throw_error) {
      throw std::runtime_error(message);
    }
    std::cerr << "locomov: " << message << "\n";
    std::exit(2);
  }
  if (o.capture_files.dir.empty()) {
    o.capture_files.dir = o.state_dir / "capture";
  }
  if (o.tls.cert_file.empty() != o.tls.key_file.empty()) {
    const char* message = "--tls-cert and --tls-key go together; give both or neither";
    if (errors == on_error::throw_error) {
      throw std::runtime_error(message);
    }
    std::cerr << "locomov: " << message << "\n";
    std::exit(2);
  }
  return o;
}

}  // namespace

options parse_options(int argc, char** argv) { return parse(argc, argv, on_error::exit); }

void pin_config_path(int argc, char** argv) {
  // Leaked on purpose: argv keeps pointing into it until the process ends.
  static auto* pinned = new std::deque<std::string>;
  const std::string_view flag = "--config";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == flag && i + 1 < argc) {
      ++i;
      pinned->push_back(std::filesystem::absolute(argv[i]).string());
      argv[i] = pinned->back().data();
    } else if (arg.substr(0, flag.size() + 1) == "--config=") {
      pinned->push_back("--config=" +
                        std::filesystem::absolute(std::string(arg.substr(flag.size() + 1)))
                            .string());
      argv[i] = pinned->back().data();
    }
  }
}

options reread_options(int argc, char** argv) { return parse(argc, argv, on_error::throw_error); }

}  // namespace locomov::app
