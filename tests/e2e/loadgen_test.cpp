// locomov_loadgen against a real daemon and database: bench/run's figures
// are only as good as its counts, over either TLS library.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

class Loadgen : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    conninfo_ = new std::string(pg_cluster::shared().fresh_database());
    daemon_ = new daemon({"--db", *conninfo_, "--log-level", "info"});
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    tx.exec0("INSERT INTO pub (pub_id, hash) SELECT g, g FROM generate_series(1, 5) g");
    tx.commit();
  }

  static void TearDownTestSuite() {
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    delete daemon_;
    delete conninfo_;
  }

  /// Runs the load generator with the parameter's TLS library and returns
  /// its JSON report; `output` keeps everything it printed.
  static nlohmann::json run(const std::vector<std::string>& extra, std::string& output) {
    std::vector<std::string> argv{LOCOMOV_LOADGEN_BINARY,
                                  "--client",
                                  GetParam(),
                                  "--port",
                                  std::to_string(daemon_->packet_port()),
                                  "--ca",
                                  daemon_->ca_file().string(),
                                  "--ids",
                                  "5",
                                  "--db",
                                  *conninfo_,
                                  "--db-settle",
                                  "0.5",
                                  "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const auto result = run_command(argv, {}, std::chrono::seconds(60));
    output = result.output;
    const auto start = output.find('{');
    const auto end = output.rfind('}');
    if (start == std::string::npos || end == std::string::npos) {
      return nlohmann::json::object();
    }
    return nlohmann::json::parse(output.substr(start, end - start + 1), nullptr, false);
  }

  static std::string* conninfo_;
  static daemon* daemon_;
};

std::string* Loadgen::conninfo_ = nullptr;
daemon* Loadgen::daemon_ = nullptr;

TEST_P(Loadgen, OnePacketPerConnectionCountsWhatTheDatabaseHolds) {
  std::string output;
  const auto j =
      run({"--servername", "localhost", "--shape", "one", "--connections", "3", "--packets", "30"},
          output);

  ASSERT_TRUE(j.is_object() && j.contains("acknowledged")) << output;
  EXPECT_EQ(j["client"], GetParam());
  EXPECT_EQ(j["handshakes"], 30) << output;
  EXPECT_EQ(j["acknowledged"], 30) << output;
  EXPECT_EQ(j["rows_found"], 30) << output;
  EXPECT_TRUE(j["connection_errors"].empty()) << output;
  // AES256-SHA by default, in either library's naming.
  const std::string tls = j["tls"];
  EXPECT_TRUE(tls.find("AES256-SHA") != std::string::npos ||
              tls.find("AES-256-CBC-SHA") != std::string::npos)
      << tls;
}

TEST_P(Loadgen, PersistentConnectionsCountWhatTheDatabaseHolds) {
  std::string output;
  const auto j = run({"--servername", "localhost", "--shape", "many", "--window", "4",
                      "--connections", "2", "--packets", "400"},
                     output);

  ASSERT_TRUE(j.is_object() && j.contains("acknowledged")) << output;
  EXPECT_EQ(j["handshakes"], 2) << output;
  EXPECT_EQ(j["acknowledged"], 400) << output;
  EXPECT_EQ(j["rows_found"], 400) << output;
}

TEST_P(Loadgen, ACertificateForAnotherNameIsRefused) {
  std::string output;
  const auto j = run({"--servername", "meters.example.test", "--shape", "one", "--connections", "1",
                      "--packets", "1", "--duration", "1"},
                     output);

  ASSERT_TRUE(j.is_object() && j.contains("acknowledged")) << output;
  EXPECT_EQ(j["acknowledged"], 0) << output;
  ASSERT_FALSE(j["connection_errors"].empty()) << output;
  for (const auto& [reason, count] : j["connection_errors"].items()) {
    EXPECT_NE(reason.find("certificate"), std::string::npos) << reason;
  }
}

INSTANTIATE_TEST_SUITE_P(Clients, Loadgen, ::testing::Values("openssl", "mbedtls"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace locomov::test
