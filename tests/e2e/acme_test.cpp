// The daemon obtaining its certificate from Pebble by itself, serving it,
// and keeping it across restarts.

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "tests/e2e/daemon_fixture.hpp"
#include "tests/e2e/http_get.hpp"
#include "tests/e2e/pebble.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

const std::string name = "meters.example.test";

std::vector<std::string> acme_options(const pebble_ca& ca, const std::string& directory = {}) {
  return {"--db", pg_cluster::shared().fresh_database(), "--acme-directory",
          directory.empty() ? ca.directory() : directory, "--acme-ca-file", ca.ca_file(),
          "--acme-names", name, "--acme-email", "ops@example.test", "--acme-http-listen",
          "127.0.0.1", "--acme-http-port", std::to_string(ca.http01_port()),
          "--tls-watch-interval", "0.2", "--log-level", "info"};
}

/// Waits until `times` lines of the log hold `part`.
bool wait_for_log(const daemon& d, const std::string& part, std::chrono::seconds limit = 30s,
                  int times = 1) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (d.log_lines_with({part}) >= times) {
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

/// Pebble's root number `index` in `dir`/`file`, as a device holds it.
std::filesystem::path write_root(const scratch_dir& dir, const pebble_ca& ca, int index,
                                 const std::string& file) {
  const auto path = dir.path() / file;
  std::ofstream(path) << ca.root(index);
  return path;
}

/// `openssl s_client` as a device: no SNI, the chain checked against
/// `root` and the name.
command_result device_handshake(const daemon& d, const std::filesystem::path& root) {
  return run_command({"openssl", "s_client", "-connect",
                      "127.0.0.1:" + std::to_string(d.packet_port()), "-noservername",
                      "-CAfile", root.string(), "-verify_hostname", name, "-verify_return_error",
                      "-brief"},
                     "", 20s);
}

/// A self-signed key pair for `name`, valid from `from_s` to `until_s`
/// seconds from now: one that expired yesterday, as an old cache would hold,
/// by default.
void write_pair(const std::filesystem::path& cert, const std::filesystem::path& key,
                long from_s = -3 * 86400, long until_s = -86400) {
  EVP_PKEY* k = EVP_RSA_gen(2048);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), from_s);
  X509_gmtime_adj(X509_getm_notAfter(x), until_s);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, ("DNS:" + name).c_str());
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_set_pubkey(x, k);
  X509_sign(x, k, EVP_sha256());
  FILE* c = fopen(cert.c_str(), "w");
  PEM_write_X509(c, x);
  fclose(c);
  FILE* kf = fopen(key.c_str(), "w");
  PEM_write_PrivateKey(kf, k, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(kf);
  X509_free(x);
  EVP_PKEY_free(k);
}

/// A CA that registers accounts and answers every order `rateLimited`
/// with Retry-After, as Let's Encrypt does past its limits: HTTPS on a
/// free loopback port, with a throwaway certificate (`ca_file`).
class rate_limited_ca {
 public:
  explicit rate_limited_ca(int retry_after_s) {
    const auto cert = dir_.path() / "stub.crt";
    const auto key = dir_.path() / "stub.key";
    const auto made = run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                   "-days", "2", "-subj", "/CN=localhost", "-addext",
                                   "subjectAltName=IP:127.0.0.1", "-keyout", key.string(),
                                   "-out", cert.string()});
    if (made.status != 0) {
      throw std::runtime_error(made.output);
    }
    server_ = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
    port_ = server_->bind_to_any_port("127.0.0.1");
    const std::string base = "https://127.0.0.1:" + std::to_string(port_);
    auto nonce = [this](httplib::Response& res) {
      res.set_header("Replay-Nonce", "n" + std::to_string(++nonces_));
    };
    server_->Get("/dir", [base](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"newNonce":")" + base + R"(/nonce","newAccount":")" + base +
                          R"(/account","newOrder":")" + base + R"(/order"})",
                      "application/json");
    });
    server_->Options("/nonce", [nonce](const httplib::Request&, httplib::Response& res) {
      nonce(res);
    });
    server_->Get("/nonce", [nonce](const httplib::Request&, httplib::Response& res) {
      nonce(res);
    });
    server_->Post("/account", [base, nonce](const httplib::Request&, httplib::Response& res) {
      nonce(res);
      res.status = 201;
      res.set_header("Location", base + "/account/1");
      res.set_content(R"({"status":"valid"})", "application/json");
    });
    server_->Post("/order", [this, nonce, retry_after_s](const httplib::Request&,
                                                          httplib::Response& res) {
      ++orders_;
      nonce(res);
      res.status = 429;
      res.set_header("Retry-After", std::to_string(retry_after_s));
      res.set_content(R"({"type":"urn:ietf:params:acme:error:rateLimited",)"
                      R"("detail":"too many certificates already issued"})",
                      "application/problem+json");
    });
    thread_ = std::thread([this] { server_->listen_after_bind(); });
  }
  ~rate_limited_ca() {
    server_->stop();
    thread_.join();
  }
  std::string directory() const { return "https://127.0.0.1:" + std::to_string(port_) + "/dir"; }
  std::string ca_file() const { return (dir_.path() / "stub.crt").string(); }
  int orders() const { return orders_; }

 private:
  scratch_dir dir_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> nonces_{0};
  std::atomic<int> orders_{0};
};

double metric(const daemon& d, const std::string& series) {
  const auto m = scrape_metrics(d.status_port());
  auto i = m.find(series);
  return i == m.end() ? 0 : i->second;
}

TEST(Acme, ObtainsAndServesItsCertificateAndKeepsItAcrossARestart) {
  pebble_ca ca({});
  scratch_dir dir;
  const auto root = write_root(dir, ca, 0, "root.pem");
  daemon d(acme_options(ca));
  // Until the CA answers, the self-signed pair; then the CA's, with no
  // signal and no restart.
  ASSERT_TRUE(wait_for_log(d, "ACME certificate obtained names=" + name)) << d.log() << ca.log();
  ASSERT_TRUE(wait_for_log(d, "certificate reloaded reason=\"files changed\"")) << d.log();
  const auto handshake = device_handshake(d, root);
  EXPECT_EQ(handshake.status, 0) << handshake.output;
  EXPECT_NE(handshake.output.find("Verification: OK"), std::string::npos) << handshake.output;
  const auto shown = run_command({locomovctl_binary(), "cert", "--port",
                                  std::to_string(d.packet_port()), "--ca", root.string(),
                                  "--servername", name});
  EXPECT_EQ(shown.status, 0) << shown.output;
  EXPECT_NE(shown.output.find("issuer      CN = Pebble Intermediate CA"), std::string::npos)
      << shown.output;
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"ok\"}"), 1);
  EXPECT_GT(metric(d, "locomov_certificate_expiry_timestamp_seconds"),
            static_cast<double>(std::time(nullptr)) + 30 * 86400);

  // A restart with a valid cached certificate serves it and orders nothing.
  ASSERT_EQ(d.stop(), 0) << d.log();
  d.restart();
  ASSERT_TRUE(wait_for_log(d, "ACME certificate cached, no order")) << d.log();
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"ok\"}"), 0);
  EXPECT_EQ(device_handshake(d, root).status, 0);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, AnExpiredCachedCertificateIsReplacedAtStart) {
  pebble_ca ca({});
  scratch_dir dir;
  const auto root = write_root(dir, ca, 0, "root.pem");
  daemon d(acme_options(ca));
  ASSERT_TRUE(wait_for_log(d, "ACME certificate obtained")) << d.log();
  ASSERT_EQ(d.stop(), 0) << d.log();
  write_pair(d.state_dir() / "acme" / "cert.pem", d.state_dir() / "acme" / "key.pem");
  d.restart();
  ASSERT_TRUE(wait_for_log(d, "ACME certificate needed reason=expired")) << d.log();
  ASSERT_TRUE(wait_for_log(d, "certificate reloaded reason=\"files changed\"")) << d.log();
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"ok\"}"), 1);
  EXPECT_EQ(device_handshake(d, root).status, 0) << d.log();
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, ARenewalUnderTrafficReachesNewHandshakesAndFailsNoConnection) {
  pebble_ca ca({});
  scratch_dir dir;
  const auto root = write_root(dir, ca, 0, "root.pem");
  daemon d(acme_options(ca));
  ASSERT_TRUE(wait_for_log(d, "certificate reloaded reason=\"files changed\"")) << d.log();
  auto serial = [&] {
    const auto shown = run_command({locomovctl_binary(), "cert", "--port",
                                    std::to_string(d.packet_port()), "--json"});
    const auto doc = nlohmann::json::parse(shown.output, nullptr, false);
    return doc.is_discarded() ? std::string() : doc["chain"][0].value("serial", "");
  };
  const auto first = serial();
  ASSERT_FALSE(first.empty());

  // Devices keep connecting, verifying the chain, while the renewal runs.
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::atomic<int> failed{0};
  std::string failure;
  std::thread devices([&] {
    while (!stop) {
      const auto r = run_command({locomovctl_binary(), "send", "--port",
                                  std::to_string(d.packet_port()), "--ca", root.string(),
                                  "--servername", name, "--id", "1"});
      ++sent;
      if (r.output.find("Thank you 1") == std::string::npos) {
        ++failed;
        failure = r.output;
      }
    }
  });
  d.proc().signal(SIGUSR1);
  std::string now = first;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (now == first && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(200ms);
    now = serial();
  }
  std::this_thread::sleep_for(500ms);  // a few handshakes on the new one
  stop = true;
  devices.join();
  EXPECT_NE(now, first) << d.log();
  EXPECT_GT(sent.load(), 3);
  EXPECT_EQ(failed.load(), 0) << failure;
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"ok\"}"), 2);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, ARateLimitKeepsTheCachedCertificateAndWaitsForRetryAfter) {
  rate_limited_ca limited(120);
  daemon d({"--db", pg_cluster::shared().fresh_database(), "--acme-directory",
            limited.directory(), "--acme-ca-file", limited.ca_file(), "--acme-names", name,
            "--acme-http-listen", "127.0.0.1", "--acme-http-port", std::to_string(free_port()),
            "--log-level", "info"});
  ASSERT_TRUE(wait_for_log(d, "error:rateLimited")) << d.log();
  ASSERT_EQ(d.stop(), 0) << d.log();
  // A cached certificate with a day of its 90 left: its renewal is due.
  const auto cached = d.state_dir() / "acme" / "cert.pem";
  write_pair(cached, d.state_dir() / "acme" / "key.pem", -89 * 86400, 86400);
  d.restart();
  ASSERT_TRUE(wait_for_log(d, "ACME certificate needed reason=renewal due")) << d.log();
  ASSERT_TRUE(wait_for_log(d, "retry_in=120s")) << d.log();
  const int ordered = limited.orders();
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(limited.orders(), ordered) << "an order before Retry-After";
  // The cached certificate is still what devices get, and the process runs.
  const auto handshake = device_handshake(d, cached);
  EXPECT_EQ(handshake.status, 0) << handshake.output << d.log();
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"failed\"}"), 1);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

/// The common name of `pem`'s first certificate.
std::string common_name(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  char cn[256] = {};
  if (cert != nullptr) {
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    X509_free(cert);
  }
  return cn;
}

TEST(Acme, ThePreferredRootPicksAmongTheAlternateChains) {
  pebble_ca ca({"PEBBLE_ALTERNATE_ROOTS=1"});
  scratch_dir dir;
  const auto alternate = write_root(dir, ca, 1, "alternate.pem");
  const auto primary = write_root(dir, ca, 0, "primary.pem");
  auto options = acme_options(ca);
  options.insert(options.end(), {"--acme-preferred-chain", common_name(ca.root(1))});
  daemon d(options);
  ASSERT_TRUE(wait_for_log(d, "certificate reloaded reason=\"files changed\"")) << d.log();
  EXPECT_NE(d.log().find("chain_root=\"" + common_name(ca.root(1)) + "\""), std::string::npos)
      << d.log();
  // Devices that trust only the alternate root accept the chain served.
  EXPECT_EQ(device_handshake(d, alternate).status, 0) << d.log();
  EXPECT_NE(device_handshake(d, primary).status, 0);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, APreferredRootNoChainEndsAtKeepsTheRunningCertificate) {
  pebble_ca ca({});
  auto options = acme_options(ca);
  options.insert(options.end(), {"--acme-preferred-chain", "Root the CA never heard of"});
  daemon d(options);
  // Quotes in a reason are logged as ' (logs::one_line).
  ASSERT_TRUE(wait_for_log(d, "no chain the CA offers ends at 'Root the CA never heard of'"))
      << d.log();
  EXPECT_EQ(d.log().find("certificate reloaded"), std::string::npos) << d.log();
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"failed\"}"), 1);
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, TlsAlpn01IsAnsweredOnThePacketPortWithNoHttpListener) {
  pebble_ca ca({});
  scratch_dir dir;
  const auto root = write_root(dir, ca, 0, "root.pem");
  auto options = acme_options(ca);
  // Pebble's validator connects to the packet port as Let's Encrypt's would
  // to 443; nothing listens on its HTTP-01 port, so only TLS-ALPN-01 can pass.
  options.insert(options.end(), {"--acme-challenge", "tls-alpn-01", "--packet-port",
                                 std::to_string(ca.tls_alpn_port())});
  daemon d(options);
  ASSERT_TRUE(wait_for_log(d, "certificate reloaded reason=\"files changed\"")) << d.log();
  EXPECT_NE(d.log().find("challenge=tls-alpn-01"), std::string::npos) << d.log();
  EXPECT_EQ(device_handshake(d, root).status, 0) << d.log();

  // A validator's handshake for a name with no order under way is refused.
  const auto stray = run_command({"openssl", "s_client", "-connect",
                                  "127.0.0.1:" + std::to_string(d.packet_port()), "-servername",
                                  name, "-alpn", "acme-tls/1", "-brief"},
                                 "", 20s);
  EXPECT_NE(stray.status, 0) << stray.output;
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"ok\"}"), 1);

  // The contexts a reload builds answer the challenges too: after SIGHUP,
  // the first renewal is validated through the running context and served
  // through a new one, which must answer the second.
  d.proc().signal(SIGHUP);
  ASSERT_TRUE(wait_for_log(d, "configuration reloaded")) << d.log();
  for (int orders = 2; orders <= 3; ++orders) {
    d.proc().signal(SIGUSR1);
    const auto ok = [&] { return metric(d, "locomov_acme_orders_total{result=\"ok\"}"); };
    for (int i = 0; i < 300 && ok() < orders && d.log().find("ACME order failed") ==
                                                     std::string::npos;
         ++i) {
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_EQ(ok(), orders) << d.log();
    ASSERT_TRUE(wait_for_log(d, "certificate reloaded", 30s, orders)) << d.log();
  }
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"failed\"}"), 0) << d.log();
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, APacketPortOn443IsValidatedOverTlsAlpn01ByDefault) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "port 443 needs root";
  }
  // As Let's Encrypt's validators do, Pebble connects to port 443.
  pebble_ca ca({}, 443);
  auto options = acme_options(ca);
  options.insert(options.end(), {"--packet-port", "443"});
  daemon d(options);
  ASSERT_TRUE(wait_for_log(d, "certificate reloaded reason=\"files changed\"")) << d.log();
  EXPECT_NE(d.log().find("challenge=tls-alpn-01"), std::string::npos) << d.log();
  EXPECT_EQ(d.stop(), 0) << d.log();
}

TEST(Acme, AStopIsPromptWhileTheCaLeavesAnOrderUnanswered) {
  pebble_ca ca({});
  // Takes connections (the kernel completes them) and never answers.
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 16), 0);
  socklen_t size = sizeof addr;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &size);
  daemon d(acme_options(ca, "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/dir"));
  ASSERT_TRUE(wait_for_log(d, "ACME order placed")) << d.log();
  std::this_thread::sleep_for(1s);  // well inside the request's 30 s

  const auto asked = std::chrono::steady_clock::now();
  EXPECT_EQ(d.stop(), 0) << d.log();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 10s) << d.log();
  EXPECT_NE(d.log().find("ACME order abandoned, locomov is stopping"), std::string::npos)
      << d.log();
  ::close(silent);
}

TEST(Acme, AnUnreachableCaLeavesTheRunningCertificateAndTheProcessUp) {
  pebble_ca ca({});
  daemon d(acme_options(ca, "https://127.0.0.1:" + std::to_string(free_port()) + "/dir"));
  ASSERT_TRUE(wait_for_log(d, "ACME order failed, the running certificate stays in service"))
      << d.log();
  EXPECT_NE(d.log().find("retry_in=60s"), std::string::npos) << d.log();
  EXPECT_EQ(metric(d, "locomov_acme_orders_total{result=\"failed\"}"), 1);
  // Devices are still served, on the self-signed pair.
  const auto sent = run_command({locomovctl_binary(), "send", "--port",
                                 std::to_string(d.packet_port()), "--insecure", "--id", "1"});
  EXPECT_NE(sent.output.find("summary: 1 connections (0 failed)"), std::string::npos)
      << sent.output;
  EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
}  // namespace locomov::test
