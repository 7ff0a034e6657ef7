// The daemon end to end: real TLS clients on loopback, a real PostgreSQL.

#include <gtest/gtest.h>
#include <signal.h>

#include <pqxx/pqxx>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/tls_client.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

const std::string valid_packet =
    R"({"Id":7,"timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0})";

class PacketPort : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    conninfo_ = new std::string(pg_cluster::shared().fresh_database());
    daemon_ = new daemon({"--db", *conninfo_, "--read-timeout", "3", "--idle-timeout", "3",
                          "--handshake-timeout", "3"});
    pqxx::connection conn{*conninfo_};
    pqxx::work tx{conn};
    for (int hash = 1; hash <= 9; ++hash) {
      tx.exec0("INSERT INTO pub (pub_id, hash) VALUES (" + std::to_string(hash) + ", " +
               std::to_string(1000 + hash) + ")");
    }
    tx.commit();
  }

  static void TearDownTestSuite() {
    // A daemon that failed to start has already failed the suite.
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    delete daemon_;
    delete conninfo_;
  }

  static tls_client client(bool tls = true) {
    tls_client::options o;
    o.port = tls ? daemon_->packet_port() : daemon_->plain_port();
    if (tls) {
      o.ca = daemon_->ca_file();
    }
    return tls_client(o);
  }

  static long count(const std::string& sql) { return query_number(*conninfo_, sql); }

  static std::string* conninfo_;
  static daemon* daemon_;
};

std::string* PacketPort::conninfo_ = nullptr;
daemon* PacketPort::daemon_ = nullptr;

TEST_F(PacketPort, LocomovctlSendIsStoredAndAcknowledged) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 7");
  auto result = run_command({locomovctl_binary(), "send", "--port",
                             std::to_string(daemon_->packet_port()), "--ca",
                             daemon_->ca_file().string(), "--json", valid_packet});
  EXPECT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("Thank you."), std::string::npos) << result.output;
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 7"), before + 1);

  pqxx::connection conn{*conninfo_};
  pqxx::work tx{conn};
  auto row = tx.exec1(
      "SELECT voltage, frequency, protected, extract(epoch FROM created_at)::bigint "
      "FROM packet WHERE pub_id = 7 ORDER BY id DESC LIMIT 1");
  EXPECT_FLOAT_EQ(row[0].as<float>(), 231.5f);
  EXPECT_FLOAT_EQ(row[1].as<float>(), 50.0f);
  EXPECT_TRUE(row[2].as<bool>());
  EXPECT_EQ(row[3].as<long>(), 1558137600);
}

TEST_F(PacketPort, OpensslClientWithFleetCipherGetsThankYou) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 8");
  // -ign_eof keeps s_client reading after its input ends, until the server
  // closes the idle connection (idle timeout of 3 s).
  auto result = run_command({"openssl", "s_client", "-connect",
                             "127.0.0.1:" + std::to_string(daemon_->packet_port()), "-CAfile",
                             daemon_->ca_file().string(), "-verify_return_error", "-tls1_2",
                             "-cipher", "AES256-SHA", "-ign_eof", "-quiet"},
                            R"({"Id":8,"timestamp":1558137600,"status":false,"voltage":230})" "\n",
                            20s);
  EXPECT_NE(result.output.find("Thank you."), std::string::npos) << result.output;
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 8"), before + 1);
}

TEST_F(PacketPort, OpensslClientOnTls13GetsThankYou) {
  auto result = run_command({"openssl", "s_client", "-connect",
                             "127.0.0.1:" + std::to_string(daemon_->packet_port()), "-CAfile",
                             daemon_->ca_file().string(), "-verify_return_error", "-tls1_3",
                             "-ign_eof", "-quiet"},
                            valid_packet + "\n", 20s);
  EXPECT_NE(result.output.find("Thank you."), std::string::npos) << result.output;
}

TEST_F(PacketPort, ManyPacketsOnOneConnectionAreAnsweredInOrder) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 3");
  auto c = client();
  std::string stream;
  std::vector<std::string> expected;
  for (int i = 0; i < 60; ++i) {
    if (i % 10 == 5) {
      stream += R"({"Id":"3","status":true})";
      expected.push_back("!OK wrong type for id\n");
    } else {
      // Go's json.Encoder separates values by a newline; other writers by nothing.
      stream += R"({"id":3,"timestamp":)" + std::to_string(1558137600 + i) +
                R"(,"status":true,"voltage":)" + std::to_string(200 + i) + "}";
      stream += (i % 2 == 0) ? "\n" : "";
      expected.push_back("Thank you.\n");
    }
  }
  c.write(stream);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    auto line = c.read_line();
    ASSERT_TRUE(line.has_value()) << "no reply to packet " << i;
    EXPECT_EQ(*line, expected[i]) << "reply " << i;
  }
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 3"), before + 54);
}

// Packets without a time are stored at their receipt time; identical ones
// read together are still different packets, not resends to drop.
TEST_F(PacketPort, IdenticalUntimedPacketsReadTogetherAreAllStored) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 3 AND voltage = 199.5");
  auto c = client();
  std::string stream;
  for (int i = 0; i < 20; ++i) {
    stream += R"({"Id":3,"status":true,"voltage":199.5})";
  }
  c.write(stream);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(c.read_line(), "Thank you.\n") << "reply " << i;
  }
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 3 AND voltage = 199.5"), before + 20);
}

TEST_F(PacketPort, UnknownPubIsQuarantinedAndAcknowledged) {
  auto c = client();
  c.write(R"({"Id":4242,"timestamp":1558137600,"status":true,"voltage":1e-46})");
  EXPECT_EQ(c.read_line(), "Thank you.\n");
  EXPECT_EQ(count("SELECT count(*) FROM quarantine WHERE pub_id = 4242 AND voltage = 0"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 4242"), 0);
}

TEST_F(PacketPort, InvalidPacketsAreRefusedAndTheConnectionStaysUsable) {
  auto c = client();
  c.write(R"({"Id":2147483648,"status":true})");
  EXPECT_EQ(c.read_line().value_or(""), "!OK id out of range\n");
  c.write(R"({"Id":1,"status":true,"voltage":3.5e38})");
  EXPECT_EQ(c.read_line().value_or("").rfind("!OK ", 0), 0u);
  c.write(R"({"Id":1,"status":true,"voltage":3.4e38,"freq":null})");
  EXPECT_EQ(c.read_line(), "Thank you.\n");
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 1 AND frequency IS NULL"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE voltage = 'NaN' OR voltage = 'Infinity'"),
            0);
}

TEST_F(PacketPort, UndecodableBytesCloseOnlyThatConnection) {
  auto bystander = client();
  auto bad = client();
  bad.write(R"({"Id":1,"status":true,"voltage":nan})");
  EXPECT_TRUE(bad.closed_by_server(5s));

  bystander.write(R"({"Id":2,"status":true,"voltage":229})");
  EXPECT_EQ(bystander.read_line(), "Thank you.\n");
  EXPECT_NE(daemon_->log().find("not JSON"), std::string::npos);
}

TEST_F(PacketPort, PlaintextOnTheTlsPortIsLoggedAndClosed) {
  tls_client::options o;
  o.port = daemon_->packet_port();
  tls_client raw(o);
  raw.write(valid_packet);
  EXPECT_TRUE(raw.closed_by_server(5s));
  EXPECT_NE(daemon_->log().find("peer did not speak TLS"), std::string::npos);
}

TEST_F(PacketPort, PlaintextDevelopmentListenerStoresPackets) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 5");
  auto c = client(false);
  c.write(R"({"ID":5,"TIMESTAMP":1558137600,"Status":true,"VOLTAGE":231.5,"Freq":50})");
  EXPECT_EQ(c.read_line(), "Thank you.\n");
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 5"), before + 1);
}

TEST_F(PacketPort, IdleConnectionIsClosedAfterReadTimeout) {
  auto c = client();
  c.write(R"({"Id":1,)");
  EXPECT_FALSE(c.closed_by_server(1s));
  EXPECT_TRUE(c.closed_by_server(5s));
}

TEST_F(PacketPort, ConcurrentConnectionsAreAllStored) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 6");
  auto result = run_command({locomovctl_binary(), "send", "--port",
                             std::to_string(daemon_->packet_port()), "--ca",
                             daemon_->ca_file().string(), "--connections", "8", "--count", "25",
                             "--quiet", "--json", R"({"Id":6,"status":true,"voltage":230})"},
                            {}, 60s);
  EXPECT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 6"), before + 200);
}

// Devices connect for one packet each. The multiplexer hands a closed socket's
// handle to the next connection, so anything still sent for the old one (the
// reply to a client's close_notify) must not reach the new one.
TEST_F(PacketPort, OnePacketConnectionsInParallelAreAllStored) {
  auto before = count("SELECT count(*) FROM packet WHERE pub_id = 4");
  auto result = run_command({locomovctl_binary(), "send", "--port",
                             std::to_string(daemon_->packet_port()), "--ca",
                             daemon_->ca_file().string(), "--connections", "8", "--repeat", "40",
                             "--tls-max", "1.2", "--cipher", "AES256-SHA", "--quiet", "--json",
                             R"({"Id":4,"status":true,"voltage":230})"},
                            {}, 120s);
  EXPECT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(count("SELECT count(*) FROM packet WHERE pub_id = 4"), before + 320);
}

TEST(EmbeddedDefault, StartsItsOwnDatabaseAndCertificate) {
  daemon d({});
  auto log = d.log();
  EXPECT_NE(log.find("psql -h"), std::string::npos) << log;
  EXPECT_TRUE(std::filesystem::exists(d.ca_file()));

  auto result = run_command({locomovctl_binary(), "send", "--port",
                             std::to_string(d.packet_port()), "--ca", d.ca_file().string(),
                             "--json", valid_packet});
  EXPECT_EQ(result.status, 0) << result.output;
  // Pub 7 does not exist in a new database: the packet waits in quarantine.
  auto psql = run_command({"psql", "-h", (d.state_dir() / "postgresql" / "socket").string(), "-p",
                           std::to_string(d.embedded_db_port()),
                           "-U", "locomov", "-At", "-c", "SELECT count(*) FROM quarantine",
                           "locomov"});
  EXPECT_EQ(psql.output, "1\n") << psql.output << log;
  EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
}  // namespace locomov::test
