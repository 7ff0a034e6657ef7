// Constrained devices' TLS clients against the daemon's default TLS
// configuration, the cases of the shared tls-clients.md that need a real
// socket: sparse ClientHellos as raw bytes over TCP, the SimpleLink profile
// and a default TLS 1.2 client with openssl s_client. (TLS_RSA_WITH_AES_256_
// CBC_SHA with s_client is in packet_port_test.cpp; the same cases without
// sockets are in tests/net/tls_session_test.cpp.)

#include <gtest/gtest.h>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/raw_socket.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/tls_cases.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

const std::string valid_packet =
    R"({"Id":7,"timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0})";

class ConstrainedClients : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new daemon({"--db", pg_cluster::shared().fresh_database()});
  }

  static void TearDownTestSuite() {
    // A daemon that failed to start has already failed the suite.
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    delete daemon_;
  }

  /// s_client with `flags` sends the valid packet; returns once the reply
  /// is in, since -ign_eof would wait for the server to close.
  static command_result s_client(const std::vector<std::string>& flags) {
    const auto address = "127.0.0.1:" + std::to_string(daemon_->packet_port());
    std::vector<std::string> argv{"openssl", "s_client", "-connect", address, "-CAfile",
                                  daemon_->ca_file().string(), "-verify_return_error", "-ign_eof"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return run_command(argv, valid_packet + "\n", 20s, "Thank you.");
  }

  static void expect_listener_serves() {
    tls_client::options o;
    o.port = daemon_->packet_port();
    o.ca = daemon_->ca_file();
    tls_client c(o);
    c.write(valid_packet);
    EXPECT_EQ(c.read_line(), "Thank you.\n");
  }

  static daemon* daemon_;
};

daemon* ConstrainedClients::daemon_ = nullptr;

TEST_F(ConstrainedClients, SparseHelloWithoutGroupsGetsServerHello) {
  raw_socket s(daemon_->packet_port());
  ASSERT_TRUE(s.send(from_hex(hello_h2)));

  const auto reply = s.receive(6, 5s);

  ASSERT_EQ(reply.size(), 6u);
  EXPECT_EQ(reply[0], 0x16);  // handshake record
  EXPECT_EQ(reply[5], 0x02);  // ServerHello
}

TEST_F(ConstrainedClients, SparseHelloWithOnlyEcdheSuitesGetsServerHelloOrOneLoggedRefusal) {
  raw_socket s(daemon_->packet_port());
  const std::string peer = "peer=127.0.0.1:" + std::to_string(s.local_port()) + " ";
  ASSERT_TRUE(s.send(from_hex(hello_h3)));

  const auto reply = s.receive(6, 5s);

  ASSERT_GE(reply.size(), 1u);
  if (reply[0] == 0x16) {
    ASSERT_EQ(reply.size(), 6u);
    EXPECT_EQ(reply[5], 0x02);
  } else {
    // OpenSSL 3.0 cannot assume secp256r1 for a client naming no groups.
    EXPECT_EQ(reply[0], 0x15);  // alert
    EXPECT_TRUE(s.closed_by_server(2s));
    EXPECT_EQ(daemon_->log_lines_with({"no shared cipher", peer}), 1) << daemon_->log();
  }
  expect_listener_serves();
}

TEST_F(ConstrainedClients, SimpleLinkProfileGetsTls12OnP256AndThankYou) {
  auto result = s_client({"-tls1_2", "-groups", "P-256", "-cipher", simplelink_ciphers});

  EXPECT_NE(result.output.find("Thank you."), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("Protocol  : TLSv1.2"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("X25519"), std::string::npos) << result.output;
  const std::string p256 = "Server Temp Key: ECDH, prime256v1";
  const auto temp_key = result.output.find("Server Temp Key: ");
  if (temp_key != std::string::npos) {
    EXPECT_EQ(result.output.compare(temp_key, p256.size(), p256), 0) << result.output;
  }
  const bool rsa_2048 = result.output.find("Server public key is 2048 bit") != std::string::npos;
  const bool ec_256 = result.output.find("Server public key is 256 bit") != std::string::npos;
  EXPECT_TRUE(rsa_2048 || ec_256) << result.output;
}

TEST_F(ConstrainedClients, DefaultTls12ClientCompletesOnTls12) {
  auto result = s_client({"-tls1_2"});

  EXPECT_NE(result.output.find("Thank you."), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("Protocol  : TLSv1.2"), std::string::npos) << result.output;
}

// A fleet whose only suite the server refuses: one log line tells the
// operator what it offered and what would have been accepted. A daemon of
// its own, so that no other failure in the suite uses up the rate limit.
TEST(NoSharedCipher, LogLineNamesTheOfferedAndAllowedSuites) {
  daemon d({"--db", pg_cluster::shared().fresh_database()});
  auto result = run_command({"openssl", "s_client", "-connect",
                             "127.0.0.1:" + std::to_string(d.packet_port()), "-tls1_2",
                             "-cipher", "CAMELLIA256-SHA"},
                            valid_packet + "\n", 20s);
  EXPECT_EQ(result.output.find("Thank you."), std::string::npos) << result.output;

  const auto log = d.log();
  const auto line_at = log.find("TLS handshake failed");
  ASSERT_NE(line_at, std::string::npos) << log;
  const auto line = log.substr(line_at, log.find('\n', line_at) - line_at);
  EXPECT_NE(line.find("reason=\"no shared cipher\""), std::string::npos) << line;
  EXPECT_NE(line.find("offered_ciphers=CAMELLIA256-SHA/TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
            std::string::npos)
      << line;
  // Offering no ECDHE suite, s_client sends no supported_groups.
  EXPECT_NE(line.find("offered_groups=none"), std::string::npos) << line;
  EXPECT_NE(line.find("AES256-SHA/TLS_RSA_WITH_AES_256_CBC_SHA"), std::string::npos) << line;
  EXPECT_NE(line.find("allowed_groups="), std::string::npos) << line;
  const auto failures = R"(locomov_tls_handshake_failures_total{listener="packet",)"
                        R"(reason="no_shared_cipher"})";
  EXPECT_EQ(scrape_metrics(d.status_port()).at(failures), 1);
  EXPECT_EQ(d.stop(), 0) << log;
}

}  // namespace
}  // namespace locomov::test
