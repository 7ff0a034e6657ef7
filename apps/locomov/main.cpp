// The locomov daemon: start-up wiring, signals and shutdown.

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <pqxx/connection>
#include <unistd.h>

#include "acme/acme_client.hpp"
#include "actors/acme_actor.hpp"
#include "actors/listener.hpp"
#include "actors/liveness.hpp"
#include "actors/messages.hpp"
#include "actors/pipeline.hpp"
#include "apps/locomov/daemonize.hpp"
#include "apps/locomov/file_watch.hpp"
#include "apps/locomov/options.hpp"
#include "apps/locomov/privileges.hpp"
#include "apps/locomov/reload.hpp"
#include "apps/locomov/service_manager.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "net/open_files.hpp"
#include "net/http01_server.hpp"
#include "net/tls_alpn_challenges.hpp"
#include "net/status_server.hpp"
#include "net/tls_context.hpp"
#include "storage/conninfo.hpp"
#include "storage/embedded_cluster.hpp"
#include "storage/schema.hpp"
#include "storage/spool.hpp"

namespace {

using namespace locomov;

// Blocks the signals the main thread waits for, before any other thread
// exists, so that CAF's threads inherit the mask and only sigwait sees them.
sigset_t block_control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

/// The next of `signals`, or 0 once `ping_every` passed without one (never,
/// when it is zero).
int wait_for_signal(const sigset_t& signals, std::chrono::microseconds ping_every) {
  if (ping_every.count() == 0) {
    int sig = 0;
    sigwait(&signals, &sig);
    return sig;
  }
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(ping_every);
  const timespec limit{static_cast<time_t>(s.count()),
                       static_cast<long>((ping_every - s).count() * 1000)};
  const int sig = sigtimedwait(&signals, nullptr, &limit);
  return sig > 0 ? sig : 0;
}

std::string database_conninfo(const app::options& opts,
                              const std::optional<accounts::account>& account,
                              std::unique_ptr<storage::embedded_cluster>& cluster) {
  if (!opts.db.empty()) {
    return opts.db;
  }
  storage::embedded_cluster::options co;
  co.dir = opts.state_dir / "postgresql";
  co.port = opts.embedded_db_port;
  if (account) {
    // locomov must still be able to stop it once it has become that user.
    co.service_user = account->name;
  }
  cluster = std::make_unique<storage::embedded_cluster>(co);
  logs::storage().info("starting embedded PostgreSQL dir={}", co.dir.string());
  cluster->start();
  return cluster->conninfo();
}

void migrate_schema(const std::string& conninfo) {
  pqxx::connection conn{conninfo};
  auto before = storage::schema_version(conn);
  auto after = storage::migrate(conn);
  if (before != after) {
    logs::storage().info("schema migrated from={} to={}", before, after);
  } else {
    logs::storage().info("schema up to date version={}", after);
  }
}

/// Every connection holds a descriptor: take all the system allows.
net::open_files_limit raise_and_log_open_files_limit() {
  auto limit = net::raise_open_files_limit();
  if (!limit.error.empty()) {
    logs::net().warn("cannot raise the open files limit soft={} hard={} reason=\"{}\"",
                     limit.soft, limit.hard, limit.error);
  } else {
    logs::net().info("open files limit soft={} hard={} was={}", limit.soft, limit.hard,
                     limit.was);
  }
  metrics::get_gauge("locomov_open_files_limit", {}, "Soft RLIMIT_NOFILE in force")
      .set(static_cast<std::int64_t>(limit.soft));
  return limit;
}

/// The places every listener's connections take, logged with where the
/// overall limit came from.
std::shared_ptr<actors::admission> make_admission(const app::options& opts,
                                                  const net::open_files_limit& files) {
  const auto derived = actors::default_max_connections(files.soft);
  const auto total = opts.admission.max_connections != 0 ? opts.admission.max_connections : derived;
  if (total > derived) {
    logs::net().warn("max-connections exceeds what the descriptor limit leaves for connections "
                     "max_connections={} open_files={} suggested={}; accept will fail with "
                     "EMFILE before the limit is reached",
                     total, files.soft, derived);
  }
  logs::net().info("connection limits max_connections={} source={} max_connections_per_address={}",
                   total, opts.admission.max_connections == 0 ? "open_files_limit" : "configured",
                   opts.admission.max_per_address);
  return std::make_shared<actors::admission>(total, opts.admission.max_per_address);
}

/// Starts the packet port, then the plaintext and confirmation ports if
/// configured, adding each to `listeners` as it starts.
void start_listeners(caf::actor_system& sys, const app::options& opts, const net::ssl_ctx_ptr& ctx,
                     const std::shared_ptr<actors::admission>& places,
                     const actors::connection_peers& peers,
                     std::vector<actors::listener>& listeners) {
  actors::listener_settings packet;
  packet.name = "packet";
  packet.host = opts.packet_listen;
  packet.port = opts.packet_port;
  packet.tls = ctx;
  packet.connection = opts.connection;
  packet.keepalive = opts.keepalive;
  packet.places = places;
  listeners.push_back(actors::start_listener(sys, packet, peers));
  logs::net().info("listening listener=packet address={}:{} tls=on", opts.packet_listen,
                   listeners.back().port);
  if (opts.plain_port != 0) {
    auto plain = packet;
    plain.name = "plain";
    plain.host = opts.plain_listen;
    plain.port = opts.plain_port;
    plain.tls = nullptr;
    listeners.push_back(actors::start_listener(sys, plain, peers));
    logs::net().warn("listening listener=plain address={}:{} tls=off (development only)",
                     opts.plain_listen, listeners.back().port);
  }
  if (opts.confo_port != 0) {
    auto confo = packet;
    confo.name = "confo";
    confo.kind = actors::service::confo;
    confo.host = opts.confo_listen;
    confo.port = opts.confo_port;
    listeners.push_back(actors::start_listener(sys, confo, peers));
    logs::net().info("listening listener=confo address={}:{} tls=on", opts.confo_listen,
                     listeners.back().port);
  }
}

/// Stops the listeners first, so that no connection arrives while the rest
/// stops, then the pipeline; blocks until every actor has ended.
void stop_actors(caf::actor_system& sys, std::vector<actors::listener>& listeners,
                 actors::pipeline& pipeline) {
  caf::scoped_actor self{sys};
  for (auto& l : listeners) {
    self->send_exit(l.broker, caf::exit_reason::user_shutdown);
    self->wait_for(l.broker);
  }
  actors::stop_pipeline(sys, pipeline);
}

/// SIGTERM's first step: listeners stop accepting, and connections answer
/// what they have read and close. Waits until they have, `bound` has passed,
/// or a second SIGTERM or SIGINT asks for haste; stop_actors then closes
/// whatever is left.
void drain_listeners(caf::actor_system& sys, std::vector<actors::listener>& listeners,
                     std::chrono::milliseconds bound, const sigset_t& signals) {
  caf::scoped_actor self{sys};
  for (auto& l : listeners) {
    self->monitor(l.broker);
    self->send(l.broker, actors::drain_atom::value);
  }
  const auto deadline = std::chrono::steady_clock::now() + bound;
  std::size_t left = listeners.size();
  while (left > 0) {
    const timespec now_or_never{0, 0};
    const int sig = sigtimedwait(&signals, nullptr, &now_or_never);
    if (sig == SIGTERM || sig == SIGINT) {
      logs::app().warn("second signal, closing connections now signal={}", strsignal(sig));
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      logs::app().warn("shutdown-timeout reached, closing the connections left limit={}ms",
                       bound.count());
      return;
    }
    self->receive([&](const caf::down_msg&) { --left; },
                  caf::after(std::chrono::milliseconds(100)) >> [] {});
  }
}

/// Pings systemd's watchdog only when the listeners (CAF's multiplexer)
/// and the pub registry (its scheduler) still take messages, so that a
/// stuck actor system is restarted, not only a process that stopped.
void ping_watchdog_if_actors_answer(caf::actor_system& sys,
                                    const std::vector<actors::listener>& listeners,
                                    const actors::pipeline& pipeline,
                                    std::chrono::microseconds watchdog) {
  std::vector<caf::actor> targets{pipeline.registry};
  for (const auto& l : listeners) {
    targets.push_back(l.broker);
  }
  // A quarter of the interval: with the wait of half of it before, a
  // ping that is skipped once is still made up for in time.
  const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(watchdog / 4);
  if (actors::all_answer(sys, targets, limit)) {
    app::notify_watchdog();
    return;
  }
  logs::app().error("actors did not answer within {}ms, watchdog not pinged", limit.count());
}

std::shared_ptr<storage::spool> open_spool(const app::options& opts) {
  if (opts.spool_max_mb == 0) {
    logs::storage().warn("spool off: packets are not acknowledged while the database is away");
    return nullptr;
  }
  storage::spool::options so;
  so.dir = opts.state_dir / "spool";
  so.max_bytes = opts.spool_max_mb << 20;
  so.segment_bytes = std::min<std::uint64_t>(so.segment_bytes, so.max_bytes);
  return std::make_shared<storage::spool>(so);
}

int run(int argc, char** argv, app::options opts, const sigset_t& signals,
        app::start_report& report, const std::optional<accounts::account>& account) {
  const auto files = raise_and_log_open_files_limit();
  auto places = make_admission(opts, files);
  std::filesystem::create_directories(opts.state_dir);
  std::unique_ptr<storage::embedded_cluster> cluster;
  auto conninfo = database_conninfo(opts, account, cluster);
  migrate_schema(conninfo);
  const bool use_acme = !opts.acme.directory.empty();
  if (use_acme && opts.acme_challenge == "tls-alpn-01") {
    opts.tls.alpn_challenges = std::make_shared<net::tls_alpn_challenges>();
  }
  auto tls = app::tls_files(opts);
  auto ctx = net::make_server_context(tls);
  if (opts.capture) {
    opts.connection.capture = std::make_shared<capture::recorder>(opts.capture_files);
  }

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  auto threads = opts.threads != 0 ? opts.threads : std::thread::hardware_concurrency();
  cfg.set("scheduler.max-threads", static_cast<size_t>(std::max(threads, 1u)));
  // An idle worker polls 10 times, then waits to be woken. CAF's default
  // polls 100 times, then 500 more with a 50 us sleep each; those sleeps'
  // wake-ups cost 6-8 % of the CPU of one-packet connections and 14 % of
  // persistent ones (bench/README.md).
  cfg.set("work-stealing.aggressive-poll-attempts", size_t{10});
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
  caf::actor_system sys{cfg};

  auto writer = opts.writer;
  writer.conninfo = conninfo;
  writer.spool = open_spool(opts);
  auto confos = opts.confos;
  confos.conninfo = conninfo;
  auto pipeline = actors::start_pipeline(sys, writer, opts.pubs, confos);
  const actors::connection_peers peers{pipeline.registry, pipeline.arbiter, pipeline.query};

  std::vector<actors::listener> listeners;
  // What /readyz reports: listeners up (until shutdown begins) and the
  // database taking connections.
  std::atomic<bool> accepting{false};
  std::unique_ptr<net::status_server> status;
  std::shared_ptr<net::http01_server> http01;
  try {
    start_listeners(sys, opts, ctx, places, peers, listeners);
    accepting = true;
    if (opts.status_port != 0) {
      status = std::make_unique<net::status_server>(
          net::status_server::settings{opts.status_listen, opts.status_port},
          [&accepting, conninfo] {
            net::readiness r;
            if (!accepting) {
              r.problems.emplace_back("not accepting: shutting down");
            }
            if (!storage::accepts_connections(conninfo, std::chrono::seconds(2))) {
              r.problems.emplace_back("database not reachable");
            }
            return r;
          });
    }
    if (use_acme && opts.acme_challenge == "http-01") {
      // Port 80, like the others, is bound while locomov may still be root.
      http01 = std::make_shared<net::http01_server>(opts.acme_http_listen, opts.acme_http_port);
    }
    // Every port is bound: root is no longer needed. What locomov made as
    // root and writes to later goes to the account first.
    app::drop_privileges(account, {opts.log_file.path, opts.state_dir / "spool",
                                   opts.state_dir / "tls", opts.capture_files.dir,
                                   opts.acme.dir});
  } catch (const std::exception&) {
    // The actor system's destructor waits for every actor to end: without
    // this, a port in use would hang start-up instead of ending it.
    stop_actors(sys, listeners, pipeline);
    throw;
  }

  logs::app().info("locomov ready certificate={} writers={} threads={}",
                   tls.cert_file.string(), writer.writers, threads);
  if (tls.cert_file == opts.state_dir / "tls" / "server.crt") {
    logs::app().info("self-signed certificate, verify it with ca={}",
                     (opts.state_dir / "tls" / "ca.crt").string());
  }
  if (cluster) {
    logs::app().info("embedded database, open it with: {}", cluster->psql_command());
  }

  caf::actor acme_actor;
  const auto acme_stopping = std::make_shared<std::atomic<bool>>(false);
  if (http01) {
    acme_actor = actors::spawn_acme_actor(
        sys, opts.acme,
        {"http-01", [http01](const std::string&, const std::string& token,
                             const std::string& authorization) {
           http01->set(token, authorization);
         }},
        acme_stopping);
  } else if (auto challenges = opts.tls.alpn_challenges) {
    acme_actor = actors::spawn_acme_actor(
        sys, opts.acme,
        {"tls-alpn-01", [challenges](const std::string& name, const std::string&,
                                     const std::string& authorization) {
           challenges->set(name, authorization);
         }},
        acme_stopping);
  }

  std::vector<caf::actor> brokers;
  for (const auto& l : listeners) {
    brokers.push_back(l.broker);
  }
  app::reloader reloader{sys, argc, argv, opts, ctx, std::move(brokers), places, files.soft};

  app::notify_ready("accepting connections");
  report.ready();
  // The wait for a signal wakes to ping a systemd watchdog at half its
  // interval, and to look at the certificate files every tls-watch-interval.
  const auto watchdog = app::watchdog_interval();
  app::file_watch certificate{reloader.certificate_files()};
  using steady = std::chrono::steady_clock;
  auto next_ping = steady::now() + watchdog / 2;
  auto next_look = steady::now() + reloader.current().tls_watch_interval;
  for (;;) {
    const auto watch_every = reloader.current().tls_watch_interval;
    auto wake = std::chrono::microseconds(0);
    const auto now = steady::now();
    for (auto [on, at] : {std::pair{watchdog.count() != 0, next_ping},
                          std::pair{watch_every.count() != 0, next_look}}) {
      if (on) {
        const auto left = std::max(std::chrono::duration_cast<std::chrono::microseconds>(at - now),
                                   std::chrono::microseconds(1));
        wake = wake.count() == 0 ? left : std::min(wake, left);
      }
    }
    const int sig = wait_for_signal(signals, wake);
    if (sig == 0) {
      if (watchdog.count() != 0 && steady::now() >= next_ping) {
        next_ping = steady::now() + watchdog / 2;
        ping_watchdog_if_actors_answer(sys, listeners, pipeline, watchdog);
      }
      if (watch_every.count() != 0 && steady::now() >= next_look) {
        next_look = steady::now() + watch_every;
        if (certificate.changed()) {
          reloader.reload_certificate();
        }
      }
      continue;
    }
    if (sig == SIGUSR1) {
      if (acme_actor) {
        caf::anon_send(acme_actor, actors::renew_atom::value);
      } else {
        logs::app().warn("SIGUSR1 renews the ACME certificate, and acme-directory is not set");
      }
      continue;
    }
    if (sig == SIGHUP) {
      app::notify_reloading();
      reloader.reload();
      // The reload may name other files, and it read the current ones.
      certificate = app::file_watch{reloader.certificate_files()};
      next_look = steady::now() + reloader.current().tls_watch_interval;
      app::notify_ready("accepting connections");
      continue;
    }
    logs::app().info("shutting down signal={} shutdown_timeout={}ms", strsignal(sig),
                     reloader.current().shutdown_timeout.count());
    break;
  }

  app::notify_stopping();
  accepting = false;
  drain_listeners(sys, listeners, reloader.current().shutdown_timeout, signals);
  if (acme_actor) {
    // An order under way is abandoned: the actor system waits for it.
    acme_stopping->store(true);
    caf::anon_send_exit(acme_actor, caf::exit_reason::user_shutdown);
  }
  stop_actors(sys, listeners, pipeline);
  logs::app().info("actors stopped");
  status.reset();
  if (cluster) {
    try {
      cluster->stop();
      logs::storage().info("embedded PostgreSQL stopped");
    } catch (const std::exception& e) {
      // Stopped behind locomov's back, say: nothing is left to lose.
      logs::storage().warn("embedded PostgreSQL did not stop cleanly reason=\"{}\"",
                           logs::one_line(e.what()));
    }
  }
  logs::app().info("locomov stopped");
  return 0;
}

/// A failed start, logged and told to whoever started locomov: the
/// --daemon parent, and the terminal when the log went to a file.
int start_failed(bool logging_to_file, app::start_report& report, const std::exception& e) {
  logs::app().critical("cannot start: {}", e.what());
  report.failed(logs::one_line(e.what()));
  if (logging_to_file) {
    std::cerr << "locomov: cannot start: " << e.what() << std::endl;
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  app::pin_config_path(argc, argv);
  auto opts = app::parse_options(argc, argv);
  // A write to a peer that has gone raises SIGPIPE, whose default action
  // would end the whole server.
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<app::pidfile> pidfile;
  app::start_report report;
  std::optional<accounts::account> account;
  bool logging_to_file = false;
  try {
    account = app::service_account(opts.user, opts.group);
    app::prepare_folder(account, opts.log_file.path.parent_path(), true);
    app::prepare_folder(account, opts.state_dir, false);
    logs::init(opts.log_level, opts.log_file);
    logging_to_file = !opts.log_file.path.empty();
    // Locked before the fork, so that "already running" reaches the
    // terminal; the daemon inherits the lock.
    if (!opts.pidfile.empty()) {
      pidfile = std::make_unique<app::pidfile>(opts.pidfile);
    }
    if (opts.daemon) {
      report = app::daemonize();
    }
    if (pidfile) {
      pidfile->write_own_pid();
    }
  } catch (const std::exception& e) {
    return start_failed(logging_to_file, report, e);
  }
  // Blocked after the fork: the parent of --daemon waits with its signals
  // as they were, so Ctrl-C still ends it.
  auto signals = block_control_signals();
  try {
    return run(argc, argv, opts, signals, report, account);
  } catch (const std::exception& e) {
    return start_failed(logging_to_file, report, e);
  }
}
