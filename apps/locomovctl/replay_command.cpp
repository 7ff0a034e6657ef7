#include "apps/locomovctl/replay_command.hpp"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "actors/pipeline.hpp"
#include "actors/replay.hpp"
#include "apps/locomovctl/live_replay.hpp"
#include "capture/record.hpp"
#include "common/logging.hpp"
#include "storage/conninfo.hpp"
#include "storage/embedded_cluster.hpp"
#include "storage/schema.hpp"

namespace locomov::ctl {
namespace {

/// The tables a replay writes to, counted before and after.
const std::vector<std::string>& counted_tables() {
  static const std::vector<std::string> tables{"packet", "quarantine", "pub", "confo", "cconfo"};
  return tables;
}

std::map<std::string, std::int64_t> count_rows(const std::string& conninfo) {
  pqxx::connection conn{conninfo};
  pqxx::nontransaction tx{conn};
  std::map<std::string, std::int64_t> counts;
  for (const auto& table : counted_tables()) {
    counts[table] = tx.exec1("SELECT count(*) FROM " + table)[0].as<std::int64_t>();
  }
  return counts;
}

/// `text` with control characters escaped, for a reply on one line.
std::string shown(const std::string& text) {
  if (text.empty()) {
    return "(none)";
  }
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class replay_command final : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override {
    auto* app = parent.add_subcommand(
        "replay",
        "Feed capture files into locomov's actors, in this process and without sockets or TLS, "
        "and report how the replies compare with the recorded ones");
    app->add_option("files", files_, "Capture files (capture.jsonl, capture.1.jsonl, ...)")
        ->required()
        ->check(CLI::ExistingFile);
    app->add_option("--db", db_,
                    "libpq connection string of the database to write to; empty: the embedded "
                    "cluster under --state-dir, started if it is not running");
    app->add_option("--state-dir", state_dir_, "State folder of the embedded cluster")
        ->capture_default_str();
    app->add_option("--embedded-db-port", embedded_port_, "Port naming the embedded cluster's socket")
        ->capture_default_str();
    app->add_option("--speed", settings_.speed,
                    "0: as fast as possible; 1: at the recorded pace; 10: ten times faster")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app->add_option("--id-map", id_map_, "Rewrite packet id FROM to TO (FROM=TO, repeatable)");
    app->add_option("--id-offset", settings_.id_offset, "Add this to every packet id (after --id-map)");
    app->add_option("--time-shift", time_shift_s_,
                    "Seconds added to every recorded time (receipt, timestamp, timestr)");
    app->add_flag("--shift-to-now", shift_to_now_,
                  "Shift times so that the capture's first record is now")
        ->excludes("--time-shift");
    app->add_option("--pub-key", pub_key_, "Column of pub that packet ids name: pub_id or hash")
        ->check(CLI::IsMember({"pub_id", "hash"}))
        ->capture_default_str();
    app->add_option("--writers", writers_, "Writer actors")->check(CLI::PositiveNumber)
        ->capture_default_str();
    app->add_option("--reply-timeout", reply_timeout_s_,
                    "Seconds to wait for a recorded reply before counting it missing")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app->add_option("--show", settings_.differences_kept, "Differences shown")
        ->capture_default_str();
    app->add_flag("--json", json_, "Print the report as one JSON object");
    auto* live = app->add_flag(
        "--live", live_,
        "Send the recorded connections over the network to a running locomov instead "
        "(rows are counted only with --db)");
    app->add_option("--host", target_.host, "--live: server address")->needs(live)
        ->capture_default_str();
    app->add_option("--port", target_.packet_port, "--live: packet port (TLS)")->needs(live)
        ->capture_default_str();
    app->add_option("--confo-port", target_.confo_port, "--live: confirmation port (TLS)")
        ->needs(live)->capture_default_str();
    app->add_option("--plain-port", target_.plain_port,
                    "--live: plaintext port for the `plain` listener's connections; 0: skip them")
        ->needs(live)->capture_default_str();
    app->add_option("--ca", target_.tls.ca_file, "--live: CA file the server certificate must chain to")
        ->needs(live)->check(CLI::ExistingFile);
    app->add_flag("--insecure", target_.tls.insecure, "--live: do not verify the server certificate")
        ->needs(live);
    app->add_option("--servername", target_.servername,
                    "--live: name to check the certificate against (default: --host)")
        ->needs(live);
    app->add_option("--tls-max", target_.tls.max_version, "--live: highest TLS version")
        ->needs(live)->check(CLI::IsMember({"1.2", "1.3"}));
    app->add_option("--cipher", target_.tls.ciphers, "--live: TLS 1.2 cipher list (e.g. AES256-SHA)")
        ->needs(live);
    app->add_option("--max-connections", target_.max_connections,
                    "--live: connections open at once, at most")
        ->needs(live)->check(CLI::PositiveNumber)->capture_default_str();
    app->add_option("--log-level", log_level_, "Log level of the actors (stderr)")
        ->capture_default_str();
    return app;
  }

  int run() override {
    try {
      return run_checked();
    } catch (const std::exception& e) {
      std::cerr << "locomovctl replay: " << e.what() << "\n";
      return exit_failed;
    }
  }

 private:
  int run_checked() {
    logs::init(log_level_);
    for (const auto& pair : id_map_) {
      const auto eq = pair.find('=');
      if (eq == std::string::npos) {
        std::cerr << "locomovctl replay: --id-map takes FROM=TO, not " << pair << "\n";
        return exit_usage;
      }
      settings_.id_map[std::stoll(pair.substr(0, eq))] = std::stoll(pair.substr(eq + 1));
    }
    std::vector<std::filesystem::path> paths(files_.begin(), files_.end());
    const auto records = capture::read_files(paths);
    if (shift_to_now_ && !records.empty()) {
      const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      settings_.time_shift_us = now - records.front().t_us;
    } else {
      settings_.time_shift_us = static_cast<std::int64_t>(time_shift_s_ * 1e6);
    }
    settings_.reply_timeout =
        std::chrono::milliseconds(static_cast<std::int64_t>(reply_timeout_s_ * 1000));

    if (live_) {
      return run_live(records);
    }
    std::unique_ptr<storage::embedded_cluster> cluster;
    auto conninfo = db_;
    if (conninfo.empty()) {
      storage::embedded_cluster::options co;
      co.dir = std::filesystem::path(state_dir_) / "postgresql";
      co.port = embedded_port_;
      cluster = std::make_unique<storage::embedded_cluster>(co);
      conninfo = cluster->conninfo();
      // The daemon's own cluster, when it runs, is used as it is.
      if (!storage::accepts_connections(conninfo, std::chrono::seconds(2))) {
        cluster->start();
      } else {
        cluster.reset();
      }
    }
    {
      pqxx::connection conn{conninfo};
      storage::migrate(conn);
    }
    const auto before = count_rows(conninfo);

    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    actors::writer_settings writers;
    writers.conninfo = conninfo;
    writers.writers = writers_;
    actors::pub_settings pubs;
    pubs.key = pub_key_ == "hash" ? storage::pub_key::hash : storage::pub_key::pub_id;
    actors::confo_settings confos;
    confos.conninfo = conninfo;
    confos.key = pubs.key;
    auto pipeline = actors::start_pipeline(sys, writers, pubs, confos);
    const actors::connection_peers peers{pipeline.registry, pipeline.arbiter, pipeline.query};
    const auto report = actors::replay(sys, peers, records, settings_);
    actors::stop_pipeline(sys, pipeline);

    const auto after = count_rows(conninfo);
    print(report, records.size(), before, after);
    if (cluster) {
      cluster->stop();
    }
    return matched(report) ? 0 : exit_failed;
  }

  int run_live(const std::vector<capture::record>& records) {
    if (target_.tls.ca_file.empty() && !target_.tls.insecure) {
      std::cerr << "locomovctl replay: --live needs --ca FILE or --insecure\n";
      return exit_usage;
    }
    std::map<std::string, std::int64_t> before;
    if (!db_.empty()) {
      before = count_rows(db_);
    }
    const auto report = replay_live(records, settings_, target_);
    const auto after = db_.empty() ? before : count_rows(db_);
    print(report.replies, records.size(), before, after);
    if (json_) {
      return report.connections_failed == 0 && matched(report.replies) ? 0 : exit_failed;
    }
    std::cout << fmt::format("connections   {} failed, {} skipped (plain, no --plain-port)\n",
                             report.connections_failed, report.connections_skipped);
    std::cout << fmt::format("latency ms    p50 {:.2f}  p99 {:.2f} (a read's write to its last reply)\n",
                             report.p50_ms, report.p99_ms);
    for (const auto& failure : report.failures) {
      std::cout << "failed        " << failure << "\n";
    }
    return report.connections_failed == 0 && matched(report.replies) ? 0 : exit_failed;
  }

  /// Extra replies fail nothing: a capture imported from packets records
  /// none, and a peer that left before its answer recorded none either.
  static bool matched(const actors::replay_report& r) {
    return r.replies_differing == 0 && r.replies_missing == 0;
  }

  void print(const actors::replay_report& r, std::size_t records,
             const std::map<std::string, std::int64_t>& before,
             const std::map<std::string, std::int64_t>& after) const {
    const double rate = r.seconds > 0 ? static_cast<double>(r.packets_acknowledged) / r.seconds : 0;
    if (json_) {
      nlohmann::json doc{{"files", files_.size()},
                         {"records", records},
                         {"connections", r.connections},
                         {"reads", r.reads},
                         {"bytes", r.bytes},
                         {"replies",
                          {{"recorded", r.replies_recorded},
                           {"matching", r.replies_matching},
                           {"differing", r.replies_differing},
                           {"missing", r.replies_missing},
                           {"extra", r.replies_extra}}},
                         {"packets_acknowledged", r.packets_acknowledged},
                         {"seconds", r.seconds},
                         {"packets_per_second", rate}};
      for (const auto& table : counted_tables()) {
        if (after.count(table) != 0) {
          doc["rows_written"][table] = after.at(table) - before.at(table);
        }
      }
      for (const auto& d : r.differences) {
        doc["differences"].push_back({{"conn", d.conn},
                                      {"listener", d.listener},
                                      {"reply", d.index},
                                      {"recorded", d.recorded},
                                      {"replayed", d.replayed}});
      }
      std::cout << doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return;
    }
    std::cout << fmt::format("replayed      {} files, {} records: {} connections, {} reads, {} bytes\n",
                             files_.size(), records, r.connections, r.reads, r.bytes);
    std::cout << fmt::format(
        "replies       recorded {}, matching {}, differing {}, missing {}, extra {}\n",
        r.replies_recorded, r.replies_matching, r.replies_differing, r.replies_missing,
        r.replies_extra);
    std::string rows;
    for (const auto& table : counted_tables()) {
      if (after.count(table) != 0) {
        rows += fmt::format("{}{} +{}", rows.empty() ? "" : ", ", table,
                            after.at(table) - before.at(table));
      }
    }
    std::cout << "rows written  " << (rows.empty() ? "not counted (no --db)" : rows) << "\n";
    std::cout << fmt::format("time          {:.3f} s, {} packets acknowledged, {:.0f} packets/s\n",
                             r.seconds, r.packets_acknowledged, rate);
    for (const auto& d : r.differences) {
      std::cout << fmt::format("difference    conn {} ({}) reply {}: recorded {}, replayed {}\n",
                               d.conn, d.listener, d.index, shown(d.recorded), shown(d.replayed));
    }
  }

  std::vector<std::string> files_;
  std::string db_;
  std::string state_dir_ = "/var/lib/locomov";
  int embedded_port_ = 5432;
  std::vector<std::string> id_map_;
  double time_shift_s_ = 0;
  bool shift_to_now_ = false;
  std::string pub_key_ = "pub_id";
  std::size_t writers_ = 2;
  double reply_timeout_s_ = 10;
  bool json_ = false;
  bool live_ = false;
  live_target target_;
  std::string log_level_ = "warn";
  actors::replay_settings settings_;
};

}  // namespace

std::unique_ptr<command> make_replay_command() { return std::make_unique<replay_command>(); }

}  // namespace locomov::ctl
