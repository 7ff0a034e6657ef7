#include "apps/locomovctl/send_command.hpp"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/locomovctl/client_connection.hpp"
#include "apps/locomovctl/json_values.hpp"

namespace locomov::ctl {

namespace {

struct send_options {
  std::string host = "127.0.0.1";
  int port = 38981;
  std::string ca_file;
  bool insecure = false;
  std::string servername;
  std::string tls_min = "1.2";
  std::string tls_max = "1.3";
  std::string cipher;
  bool plain = false;

  int count = 1;
  int connections = 1;
  int repeat = 1;
  bool pipeline = false;
  bool no_newline = false;

  std::string file;
  bool from_stdin = false;
  std::string json;
  std::int64_t id = 0;
  std::int64_t timestamp = 0;
  bool status = true;
  double voltage = 0;
  double freq = 0;

  double timeout_s = 10;
  bool quiet = false;
};

/// What became of the packets of some connections. Each thread keeps its
/// own and the totals are merged at the end.
struct tally {
  std::uint64_t connections = 0;
  std::uint64_t connections_failed = 0;
  std::uint64_t planned = 0;
  std::uint64_t sent = 0;
  std::uint64_t thank_you = 0;
  std::uint64_t not_ok = 0;
  std::map<std::string, std::uint64_t> failures;  // reason -> packets

  void merge(const tally& other) {
    connections += other.connections;
    connections_failed += other.connections_failed;
    planned += other.planned;
    sent += other.sent;
    thank_you += other.thank_you;
    not_ok += other.not_ok;
    for (const auto& [reason, n] : other.failures) {
      failures[reason] += n;
    }
  }

  std::uint64_t failed() const {
    std::uint64_t n = 0;
    for (const auto& entry : failures) {
      n += entry.second;
    }
    return n;
  }
};

std::string read_all(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class send_command final : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override;
  int run() override;

 private:
  std::vector<std::string> load_packets() const;
  void run_slot(int slot, SSL_CTX* ctx, tally& result);
  void run_connection(int conn, SSL_CTX* ctx, tally& result);
  void print_reply(int conn, std::size_t packet, const std::string& text);
  void print_note(const std::string& text);
  void print_summary(const tally& total, double seconds) const;

  send_options opts_;
  CLI::Option* flag_options_[5] = {};
  std::vector<std::string> wire_;  // each packet as written, line end included
  std::string verify_name_;
  std::mutex print_mutex_;
};

CLI::App* send_command::add_to(CLI::App& parent) {
  auto* app = parent.add_subcommand("send", "Send packets to the packet port and print the replies");
  auto& o = opts_;

  app->add_option("--host", o.host, "Server address")->capture_default_str();
  app->add_option("--port", o.port, "Packet port")->capture_default_str()->check(
      CLI::Range(1, 65535));
  auto* ca = app->add_option("--ca", o.ca_file, "PEM file of the CA that signed the server "
                                                "certificate")
                 ->check(CLI::ExistingFile);
  auto* insecure =
      app->add_flag("--insecure", o.insecure, "Do not verify the server certificate");
  ca->excludes(insecure);
  auto* servername = app->add_option(
      "--servername", o.servername, "Name to send as SNI and to check the certificate against "
                                    "(default: --host)");
  const auto versions = CLI::IsMember({"1.0", "1.1", "1.2", "1.3"});
  auto* tls_min =
      app->add_option("--tls-min", o.tls_min, "Lowest TLS version")->capture_default_str()->check(
          versions);
  auto* tls_max = app->add_option("--tls-max", o.tls_max, "Highest TLS version")
                      ->capture_default_str()
                      ->check(versions);
  auto* cipher = app->add_option("--cipher", o.cipher,
                                 "TLS 1.2 cipher list, OpenSSL syntax (e.g. AES256-SHA)");
  auto* plain = app->add_flag("--plain", o.plain,
                              "Plain TCP without TLS, for the development listener");
  for (auto* tls_only : {ca, insecure, servername, tls_min, tls_max, cipher}) {
    plain->excludes(tls_only);
  }

  app->add_option("--count", o.count, "Times each connection sends the packet list")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--connections", o.connections, "Concurrent connections, one thread each")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_option("--repeat", o.repeat, "Connections made one after another by each of them")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_flag("--pipeline", o.pipeline,
                "Write every packet before waiting for replies (default: wait for each reply "
                "before the next packet)");
  app->add_flag("--no-newline", o.no_newline,
                "Send packets back to back without the '\\n' that Go's json.Encoder adds");

  auto* file = app->add_option("--file", o.file, "File of JSON packets, one per line or "
                                                 "concatenated")
                   ->check(CLI::ExistingFile);
  auto* from_stdin = app->add_flag("--stdin", o.from_stdin, "Read JSON packets from stdin");
  auto* json = app->add_option("--json", o.json, "The packet(s) as JSON text");
  flag_options_[0] = app->add_option("--id", o.id, "Device id (\"Id\" key)");
  flag_options_[1] =
      app->add_option("--timestamp", o.timestamp, "Unix seconds (default: now)");
  flag_options_[2] = app->add_option("--status", o.status, "true or false")->capture_default_str();
  flag_options_[3] = app->add_option("--voltage", o.voltage, "Volts");
  flag_options_[4] = app->add_option("--freq", o.freq, "Hertz");
  file->excludes(from_stdin)->excludes(json);
  from_stdin->excludes(json);
  for (auto* flag : flag_options_) {
    file->excludes(flag);
    from_stdin->excludes(flag);
    json->excludes(flag);
  }

  app->add_option("--timeout", o.timeout_s,
                  "Seconds to wait for connect plus handshake, for each write and each reply")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app->add_flag("--quiet", o.quiet, "Print only the summary");
  return app;
}

std::vector<std::string> send_command::load_packets() const {
  if (!opts_.file.empty()) {
    std::ifstream in(opts_.file, std::ios::binary);
    if (!in) {
      throw std::runtime_error("cannot read " + opts_.file);
    }
    return split_json_values(read_all(in));
  }
  if (opts_.from_stdin) {
    return split_json_values(read_all(std::cin));
  }
  if (!opts_.json.empty()) {
    return split_json_values(opts_.json);
  }
  if (flag_options_[0]->count() == 0) {
    throw std::runtime_error(
        "say what to send: --file, --stdin, --json, or --id (with optional --timestamp, "
        "--status, --voltage, --freq)");
  }

  // Key names and order as the fleet's Go clients write them.
  nlohmann::ordered_json packet;
  packet["Id"] = opts_.id;
  packet["timestamp"] = flag_options_[1]->count() > 0
                            ? opts_.timestamp
                            : static_cast<std::int64_t>(std::time(nullptr));
  packet["status"] = opts_.status;
  if (flag_options_[3]->count() > 0) {
    packet["voltage"] = opts_.voltage;
  }
  if (flag_options_[4]->count() > 0) {
    packet["freq"] = opts_.freq;
  }
  return {packet.dump()};
}

void send_command::print_reply(int conn, std::size_t packet, const std::string& text) {
  if (opts_.quiet) {
    return;
  }
  std::lock_guard<std::mutex> lock(print_mutex_);
  std::cout << "conn " << conn << " packet " << packet << ": " << text << '\n' << std::flush;
}

void send_command::print_note(const std::string& text) {
  if (opts_.quiet) {
    return;
  }
  std::lock_guard<std::mutex> lock(print_mutex_);
  std::cerr << text << '\n';
}

void send_command::run_connection(int conn, SSL_CTX* ctx, tally& result) {
  const std::size_t total = wire_.size() * static_cast<std::size_t>(opts_.count);
  result.planned += total;
  ++result.connections;

  const auto timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(opts_.timeout_s * 1000.0));
  std::unique_ptr<client_connection> c;
  try {
    c = std::make_unique<client_connection>(opts_.host, static_cast<std::uint16_t>(opts_.port),
                                            ctx, verify_name_, timeout);
  } catch (const connection_error& e) {
    ++result.connections_failed;
    result.failures[std::string("not sent (") + e.what() + ")"] += total;
    print_note("conn " + std::to_string(conn) + ": " + e.what());
    return;
  }
  print_note("conn " + std::to_string(conn) + ": connected, " + c->description());

  std::size_t sent = 0;
  std::size_t answered = 0;
  std::string line;
  auto take_reply = [&] {
    if (line == "Thank you.") {
      ++result.thank_you;
    } else if (line.rfind("!OK", 0) == 0) {
      ++result.not_ok;
    } else {
      ++result.failures["unexpected reply"];
    }
    print_reply(conn, answered++, line);
  };
  auto read_reply = [&] {
    if (!c->read_line(line)) {
      throw connection_error("no reply", "server closed the connection");
    }
    take_reply();
  };

  try {
    for (std::size_t i = 0; i < total; ++i) {
      c->write_all(wire_[i % wire_.size()]);
      ++sent;
      ++result.sent;
      if (!opts_.pipeline) {
        read_reply();
        continue;
      }
      // Take replies as they come so neither side's buffers fill up on long runs.
      while (c->try_read_line(line)) {
        take_reply();
      }
    }
    while (answered < sent) {
      read_reply();
    }
  } catch (const connection_error& e) {
    for (std::size_t k = answered; k < total; ++k) {
      const std::string reason =
          std::string(k < sent ? "no reply (" : "not sent (") + e.what() + ")";
      ++result.failures[reason];
      print_reply(conn, k, "[" + reason + "]");
    }
  }
  c->close();
}

void send_command::run_slot(int slot, SSL_CTX* ctx, tally& result) {
  for (int r = 0; r < opts_.repeat; ++r) {
    run_connection(slot * opts_.repeat + r, ctx, result);
  }
}

void send_command::print_summary(const tally& total, double seconds) const {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(3);
  out << "summary: " << total.connections << " connections (" << total.connections_failed
      << " failed), " << total.planned << " packets: sent " << total.sent << ", Thank you "
      << total.thank_you << ", !OK " << total.not_ok << ", no reply/errors " << total.failed()
      << "; " << seconds << " s\n";
  for (const auto& [reason, n] : total.failures) {
    out << "  " << n << " x " << reason << '\n';
  }
  std::cerr << out.str();
}

int send_command::run() {
  if (!opts_.plain && opts_.ca_file.empty() && !opts_.insecure) {
    std::cerr << "locomovctl send: give --ca FILE to verify the server, or --insecure to skip "
                 "verification (or --plain for the development listener)\n";
    return exit_usage;
  }

  std::vector<std::string> packets;
  try {
    packets = load_packets();
  } catch (const std::exception& e) {
    std::cerr << "locomovctl send: " << e.what() << '\n';
    return exit_usage;
  }
  if (packets.empty()) {
    std::cerr << "locomovctl send: the input holds no JSON value\n";
    return exit_usage;
  }
  for (auto& p : packets) {
    wire_.push_back(opts_.no_newline ? p : p + '\n');
  }

  ssl_ctx_ptr ctx;
  if (!opts_.plain) {
    client_tls_settings tls;
    tls.ca_file = opts_.ca_file;
    tls.insecure = opts_.insecure;
    tls.min_version = opts_.tls_min;
    tls.max_version = opts_.tls_max;
    tls.ciphers = opts_.cipher;
    try {
      ctx = make_client_context(tls);
    } catch (const std::invalid_argument& e) {
      std::cerr << "locomovctl send: " << e.what() << '\n';
      return exit_usage;
    }
  }
  verify_name_ = opts_.servername.empty() ? opts_.host : opts_.servername;

  const auto start = std::chrono::steady_clock::now();
  std::vector<tally> results(static_cast<std::size_t>(opts_.connections));
  if (opts_.connections == 1) {
    run_slot(0, ctx.get(), results[0]);
  } else {
    std::vector<std::thread> threads;
    for (int slot = 0; slot < opts_.connections; ++slot) {
      threads.emplace_back([this, slot, &ctx, &results] {
        run_slot(slot, ctx.get(), results[static_cast<std::size_t>(slot)]);
      });
    }
    for (auto& t : threads) {
      t.join();
    }
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;

  tally total;
  for (const auto& r : results) {
    total.merge(r);
  }
  print_summary(total, elapsed.count());
  return total.thank_you == total.planned ? 0 : 1;
}

}  // namespace

std::unique_ptr<command> make_send_command() { return std::make_unique<send_command>(); }

}  // namespace locomov::ctl
