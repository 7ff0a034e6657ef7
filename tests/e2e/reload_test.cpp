// SIGHUP: the daemon, started from a config file as an operator starts it,
// reloads that file and its certificate while connections stay up.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/process.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

/// A packet of a device that is not in `pub`: it is quarantined, and
/// acknowledged all the same.
std::string packet(int n) {
  return R"({"Id":7,"status":true,"voltage":)" + std::to_string(200 + n) + R"(,"freq":50.0})";
}

class Reload : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/locomov-reload-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    packet_port_ = free_port();
    status_port_ = free_port();
    config_ = {{"state-dir", (dir_ / "state").string()},
               {"log-level", "info"},
               {"db", '"' + pg_cluster::shared().fresh_database() + '"'},
               {"packet-listen", "127.0.0.1"},
               {"packet-port", std::to_string(packet_port_)},
               {"confo-port", "0"},
               {"status-port", std::to_string(status_port_)},
               {"tls-cert", (dir_ / "server.crt").string()},
               {"tls-key", (dir_ / "server.key").string()},
               // Tests that replace files and send SIGHUP must not race the
               // watcher; the one that needs it turns it on.
               {"tls-watch-interval", "0"}};
    make_key_pair("first");
    make_key_pair("second");
    install_key_pair("first");
    write_config();
  }

  void TearDown() override {
    if (proc_ && proc_->running()) {
      proc_->signal(SIGKILL);
      proc_->wait(30s);
    }
    if (getenv("LOCOMOV_E2E_KEEP") == nullptr) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  /// A self-signed certificate for 127.0.0.1 and its key, as an operator
  /// would make them, in `name`.crt and `name`.key.
  void make_key_pair(const std::string& name) {
    const auto result = run_command(
        {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=locomov reload " + name, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
         (dir_ / (name + ".key")).string(), "-out", (dir_ / (name + ".crt")).string()});
    ASSERT_EQ(result.status, 0) << result.output;
  }

  /// Puts the pair `name` where the config file points, over the last one.
  void install_key_pair(const std::string& name) {
    fs::copy_file(dir_ / (name + ".crt"), dir_ / "server.crt",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(dir_ / (name + ".key"), dir_ / "server.key",
                  fs::copy_options::overwrite_existing);
  }

  void write_config(const std::string& extra_line = {}) {
    std::ofstream out{dir_ / "locomov.conf", std::ios::trunc};
    for (const auto& [key, value] : config_) {
      out << key << " = " << value << "\n";
    }
    out << extra_line << "\n";
  }

  /// Starts `locomov --config FILE` and waits until it is ready.
  void start() {
    proc_ = std::make_unique<process>(
        std::vector<std::string>{locomov_binary(), "--config", (dir_ / "locomov.conf").string()},
        dir_ / "locomov.log");
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until && proc_->running()) {
      if (log().find("locomov ready") != std::string::npos) {
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "locomov did not become ready:\n" << log();
  }

  std::string log() const { return proc_->output(); }

  int lines_with(const std::string& part) const {
    const auto text = log();
    int n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
      ++n;
    }
    return n;
  }

  /// Sends SIGHUP and returns the line that ends the reload: "configuration
  /// reloaded ..." or "configuration reload failed ..."; empty after 20 s.
  std::string reload() {
    const int before = lines_with("configuration reload");
    proc_->signal(SIGHUP);
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      if (lines_with("configuration reload") > before) {
        const auto text = log();
        const auto start = text.rfind("configuration reload");
        const auto end = text.find('\n', start);
        return text.substr(start, end - start);
      }
      std::this_thread::sleep_for(50ms);
    }
    return {};
  }

  /// A client of the packet port that trusts only the pair `trusted`.
  std::unique_ptr<tls_client> connect(const std::string& trusted, int port = 0) {
    tls_client::options o;
    o.port = port != 0 ? port : packet_port_;
    o.ca = dir_ / (trusted + ".crt");
    return std::make_unique<tls_client>(o);
  }

  /// The reply to a packet sent on `client`.
  static std::string send(tls_client& client, int n) {
    client.write(packet(n));
    return client.read_line(10s).value_or("(no reply)");
  }

  std::string fingerprint(const std::string& pair) const {
    return certificate_file_fingerprint(dir_ / (pair + ".crt"));
  }

  fs::path dir_;
  int packet_port_ = 0;
  int status_port_ = 0;
  std::map<std::string, std::string> config_;
  std::unique_ptr<process> proc_;
};

TEST_F(Reload, NewCertificateAndLogLevelLeaveOpenConnectionsServed) {
  start();
  auto before = connect("first");
  ASSERT_EQ(send(*before, 1), "Thank you.\n") << log();
  EXPECT_EQ(lines_with(" debug ["), 0) << log();

  install_key_pair("second");
  config_["log-level"] = "debug";
  write_config();
  const auto line = reload();

  EXPECT_NE(line.find("configuration reloaded changed=log-level,certificate needs_restart=none"),
            std::string::npos)
      << log();
  EXPECT_NE(line.find("certificate_sha256=" + fingerprint("second")), std::string::npos) << line;
  // The open connection keeps its session, made from the first certificate.
  EXPECT_EQ(send(*before, 2), "Thank you.\n") << log();
  EXPECT_EQ(before->peer_fingerprint(), fingerprint("first"));
  auto after = connect("second");
  EXPECT_EQ(after->peer_fingerprint(), fingerprint("second"));
  EXPECT_EQ(send(*after, 3), "Thank you.\n") << log();
  EXPECT_THROW(connect("first"), std::runtime_error);
  EXPECT_GT(lines_with(" debug [net] connection accepted"), 0) << log();

  std::ofstream{dir_ / "server.key", std::ios::trunc} << "not a key\n";
  const auto failed = reload();

  EXPECT_NE(failed.find("configuration reload failed, still running on the previous "
                        "configuration reason=\"TLS key_file '" +
                        (dir_ / "server.key").string() + "'"),
            std::string::npos)
      << log();
  EXPECT_EQ(send(*before, 4), "Thank you.\n") << log();
  EXPECT_EQ(send(*after, 5), "Thank you.\n") << log();
  auto third = connect("second");
  EXPECT_EQ(third->peer_fingerprint(), fingerprint("second"));
  EXPECT_EQ(send(*third, 6), "Thank you.\n") << log();

  const auto metrics = scrape_metrics(status_port_);
  EXPECT_EQ(metrics.at("locomov_config_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(metrics.at("locomov_config_reloads_total{result=\"failed\"}"), 1);

  before.reset();
  after.reset();
  third.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

TEST_F(Reload, RestartOnlyOptionKeepsItsRunningValueWithAWarning) {
  start();
  const int other_port = free_port();

  config_["packet-port"] = std::to_string(other_port);
  write_config();
  const auto line = reload();

  EXPECT_NE(line.find("configuration reloaded changed=none needs_restart=packet-port"),
            std::string::npos)
      << log();
  EXPECT_EQ(lines_with("option needs a restart to change, keeping the running value "
                       "option=packet-port running=" +
                       std::to_string(packet_port_) + " configured=" + std::to_string(other_port)),
            1)
      << log();
  auto client = connect("first");
  EXPECT_EQ(send(*client, 1), "Thank you.\n") << log();
  EXPECT_THROW(connect("first", other_port), std::runtime_error);

  client.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

TEST_F(Reload, NewDeadlinesApplyToConnectionsAcceptedAfterwards) {
  start();
  auto before = connect("first");
  ASSERT_EQ(send(*before, 1), "Thank you.\n") << log();

  config_["idle-timeout"] = "1";
  write_config();
  const auto line = reload();

  EXPECT_NE(line.find("configuration reloaded changed=idle-timeout needs_restart=none"),
            std::string::npos)
      << log();
  auto after = connect("first");
  EXPECT_EQ(send(*after, 2), "Thank you.\n") << log();
  EXPECT_TRUE(after->closed_by_server(5s)) << log();
  // Its idle deadline is still start-up's 120 s.
  EXPECT_EQ(send(*before, 3), "Thank you.\n") << log();

  before.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

TEST_F(Reload, LowerPerAddressLimitClosesNoOpenConnection) {
  start();
  auto first = connect("first");
  auto second = connect("first");
  ASSERT_EQ(send(*first, 1), "Thank you.\n") << log();
  ASSERT_EQ(send(*second, 2), "Thank you.\n") << log();

  config_["max-connections-per-address"] = "1";
  write_config();
  const auto line = reload();

  EXPECT_NE(line.find("changed=max-connections-per-address needs_restart=none"), std::string::npos)
      << log();
  EXPECT_NE(line.find("max_connections_per_address=1"), std::string::npos) << line;
  EXPECT_THROW(connect("first"), std::runtime_error);
  EXPECT_EQ(lines_with("connection refused"), 1) << log();
  EXPECT_EQ(send(*first, 3), "Thank you.\n") << log();
  EXPECT_EQ(send(*second, 4), "Thank you.\n") << log();

  first.reset();
  second.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

TEST_F(Reload, CaptureTurnedOnRecordsNewConnectionsAndTurnedOffStops) {
  start();
  const auto capture_dir = dir_ / "captures";
  const auto file = capture_dir / "capture.jsonl";
  auto before = connect("first");
  EXPECT_EQ(send(*before, 1), "Thank you.\n") << log();

  config_["capture"] = "true";
  config_["capture-dir"] = capture_dir.string();
  write_config();
  EXPECT_NE(reload().find("configuration reloaded changed=capture,capture-dir"), std::string::npos)
      << log();
  auto after = connect("first");
  EXPECT_EQ(send(*after, 2), "Thank you.\n") << log();
  // The connection opened before capture began stays unrecorded.
  EXPECT_EQ(send(*before, 3), "Thank you.\n") << log();

  config_["capture"] = "false";
  write_config();
  EXPECT_NE(reload().find("changed=capture"), std::string::npos) << log();
  // Stopped at once, for the open connection too.
  EXPECT_EQ(send(*after, 4), "Thank you.\n") << log();
  std::this_thread::sleep_for(500ms);  // the recorder writes out every 200 ms

  std::ifstream in{file};
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The file holds each packet as a JSON string: its quotes escaped.
  auto recorded = [&text](int n) {
    return text.find("voltage\\\":" + std::to_string(200 + n)) != std::string::npos;
  };
  EXPECT_NE(text.find("\"ev\":\"open\""), std::string::npos) << text;
  EXPECT_TRUE(recorded(2)) << text;
  EXPECT_FALSE(recorded(3)) << text;
  EXPECT_FALSE(recorded(4)) << text;
  EXPECT_EQ(lines_with("capture stopped"), 1) << log();

  before.reset();
  after.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

TEST_F(Reload, RenewedCertificateFilesAreServedWithoutASignal) {
  config_["tls-watch-interval"] = "0.2";
  write_config();
  start();
  auto before = connect("first");
  ASSERT_EQ(send(*before, 1), "Thank you.\n") << log();

  // A renewal caught between its two files: the new certificate with the
  // old key cannot be served, and the running pair stays.
  fs::copy_file(dir_ / "second.crt", dir_ / "server.crt", fs::copy_options::overwrite_existing);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (lines_with("certificate files changed but cannot be served") == 0 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(lines_with("certificate files changed but cannot be served, keeping the running "
                       "certificate"),
            1)
      << log();
  EXPECT_EQ(connect("first")->peer_fingerprint(), fingerprint("first"));

  // Then the key arrives: new handshakes get the new certificate within
  // seconds, and the open connection keeps its session.
  fs::copy_file(dir_ / "second.key", dir_ / "server.key", fs::copy_options::overwrite_existing);
  while (lines_with("certificate reloaded reason=\"files changed\" certificate_sha256=" +
                    fingerprint("second")) == 0 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  auto after = connect("second");
  EXPECT_EQ(after->peer_fingerprint(), fingerprint("second")) << log();
  EXPECT_EQ(send(*after, 2), "Thank you.\n") << log();
  EXPECT_EQ(send(*before, 3), "Thank you.\n") << log();

  const auto metrics = scrape_metrics(status_port_);
  EXPECT_EQ(metrics.at("locomov_certificate_reloads_total{result=\"ok\"}"), 1);
  EXPECT_EQ(metrics.at("locomov_certificate_reloads_total{result=\"failed\"}"), 1);
  EXPECT_GT(metrics.at("locomov_certificate_expiry_timestamp_seconds"),
            static_cast<double>(std::time(nullptr)));
  EXPECT_EQ(lines_with("reloading configuration"), 0) << log();
  // What an operator checks: the certificate in service, as a device sees it.
  const auto shown = run_command({locomovctl_binary(), "cert", "--port",
                                  std::to_string(packet_port_), "--ca",
                                  (dir_ / "second.crt").string(), "--servername", "127.0.0.1"});
  EXPECT_EQ(shown.status, 0) << shown.output;
  EXPECT_NE(shown.output.find("sha256      " + fingerprint("second")), std::string::npos)
      << shown.output;
  EXPECT_NE(shown.output.find("chain verified"), std::string::npos) << shown.output;

  before.reset();
  after.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

TEST_F(Reload, ConfigFileErrorChangesNothing) {
  start();

  // A valid change beside the error must not be applied either.
  config_["log-level"] = "debug";
  write_config("this line is not an option");
  const auto line = reload();

  EXPECT_NE(line.find("configuration reload failed, still running on the previous "
                      "configuration reason="),
            std::string::npos)
      << log();
  EXPECT_NE(line.find("this line is not an option"), std::string::npos) << line;
  auto client = connect("first");
  EXPECT_EQ(send(*client, 1), "Thank you.\n") << log();
  EXPECT_EQ(lines_with(" debug ["), 0) << log();
  EXPECT_EQ(scrape_metrics(status_port_).at("locomov_config_reloads_total{result=\"failed\"}"), 1);

  client.reset();
  proc_->signal(SIGTERM);
  EXPECT_EQ(proc_->wait(30s), 0) << log();
}

}  // namespace
}  // namespace locomov::test
