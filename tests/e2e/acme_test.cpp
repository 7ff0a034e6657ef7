// The daemon obtaining its certificate from Pebble by itself, serving it,
// and keeping it across restarts.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <signal.h>

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

bool wait_for_log(const daemon& d, const std::string& part, std::chrono::seconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (d.log().find(part) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
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

/// A key pair for `name` that expired yesterday, as an old cache would hold.
void write_expired_pair(const std::filesystem::path& cert, const std::filesystem::path& key) {
  EVP_PKEY* k = EVP_RSA_gen(2048);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), -3 * 86400);
  X509_gmtime_adj(X509_getm_notAfter(x), -86400);
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

double metric(const daemon& d, const std::string& series) {
  const auto m = scrape_metrics(d.status_port());
  auto i = m.find(series);
  return i == m.end() ? 0 : i->second;
}

TEST(Acme, ObtainsAndServesItsCertificateAndKeepsItAcrossARestart) {
  pebble_ca ca({});
  scratch_dir dir;
  const auto root = dir.path() / "root.pem";
  std::ofstream(root) << ca.root(0);
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
  const auto root = dir.path() / "root.pem";
  std::ofstream(root) << ca.root(0);
  daemon d(acme_options(ca));
  ASSERT_TRUE(wait_for_log(d, "ACME certificate obtained")) << d.log();
  ASSERT_EQ(d.stop(), 0) << d.log();
  write_expired_pair(d.state_dir() / "acme" / "cert.pem", d.state_dir() / "acme" / "key.pem");
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
  const auto root = dir.path() / "root.pem";
  std::ofstream(root) << ca.root(0);
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
