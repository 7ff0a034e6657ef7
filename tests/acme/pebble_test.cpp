// The ACME client against Pebble, the ACME test CA (Debian's `pebble`), on
// loopback: pebble-challtestsrv answers Pebble's DNS queries with 127.0.0.1,
// and the test serves the HTTP-01 tokens on the port Pebble validates.

#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "acme/acme_client.hpp"
#include "tests/e2e/pebble.hpp"
#include "tests/e2e/process.hpp"
#include "tests/support/pg_cluster.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::test {
namespace {

using namespace std::chrono_literals;

std::vector<X509*> read_chain(const std::string& pem) {
  std::vector<X509*> out;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    out.push_back(cert);
  }
  BIO_free(bio);
  return out;
}

/// Whether `chain_pem` (leaf first) chains up to `root_pem`, and the leaf
/// holds `name`.
bool verifies(const std::string& chain_pem, const std::string& root_pem, const std::string& name) {
  auto chain = read_chain(chain_pem);
  auto roots = read_chain(root_pem);
  if (chain.empty() || roots.empty()) {
    return false;
  }
  X509_STORE* store = X509_STORE_new();
  for (auto* r : roots) {
    X509_STORE_add_cert(store, r);
  }
  STACK_OF(X509)* intermediates = sk_X509_new_null();
  for (std::size_t i = 1; i < chain.size(); ++i) {
    sk_X509_push(intermediates, chain[i]);
  }
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, chain[0], intermediates);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), name.c_str(), 0);
  const bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  sk_X509_free(intermediates);
  X509_STORE_free(store);
  for (auto* c : chain) {
    X509_free(c);
  }
  for (auto* r : roots) {
    X509_free(r);
  }
  return ok;
}

/// Serves HTTP-01 tokens on 127.0.0.1:port, as locomov's challenge listener
/// will.
class token_server {
 public:
  explicit token_server(int port) {
    server_.Get(R"(/\.well-known/acme-challenge/(.+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard<std::mutex> lock(mutex_);
                  auto i = tokens_.find(req.matches[1]);
                  if (i == tokens_.end()) {
                    res.status = 404;
                    return;
                  }
                  ++served_;
                  res.set_content(i->second, "application/octet-stream");
                });
    // Bound before the CA is told to look.
    if (!server_.bind_to_port("127.0.0.1", port)) {
      throw std::runtime_error("cannot bind the HTTP-01 port " + std::to_string(port));
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~token_server() {
    server_.stop();
    thread_.join();
  }

  acme::challenge_responder responder() {
    return {"http-01",
            [this](const std::string&, const std::string& token, const std::string& authorization) {
              std::lock_guard<std::mutex> lock(mutex_);
              if (authorization.empty()) {
                tokens_.erase(token);
              } else {
                tokens_[token] = authorization;
              }
            }};
  }

  int served() {
    std::lock_guard<std::mutex> lock(mutex_);
    return served_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, std::string> tokens_;
  int served_ = 0;
};

acme::client make_client(const pebble_ca& ca) {
  acme::client_settings s;
  s.directory_url = ca.directory();
  s.ca_file = ca.ca_file();
  s.email = "ops@example.test";
  s.account_key_pem = acme::make_account_key();
  return acme::client(s);
}

TEST(AcmePebble, ObtainsACertificateOverHttp01ThatChainsToPebblesRoot) {
  pebble_ca ca({});
  token_server tokens(ca.http01_port());
  auto client = make_client(ca);
  client.register_account();
  EXPECT_NE(client.account_url().find("/my-account/"), std::string::npos) << client.account_url();
  const auto got = client.order({"meters.example.test", "fleet.example.test"}, tokens.responder());
  EXPECT_GE(tokens.served(), 2) << ca.log();
  EXPECT_TRUE(verifies(got.chain_pem, ca.root(0), "meters.example.test")) << got.chain_pem;
  EXPECT_TRUE(verifies(got.chain_pem, ca.root(0), "fleet.example.test"));
  EXPECT_NE(got.key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  // The fleet's TLS stack needs RSA.
  auto chain = read_chain(got.chain_pem);
  ASSERT_FALSE(chain.empty());
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(chain[0])), EVP_PKEY_RSA);
  for (auto* c : chain) {
    X509_free(c);
  }
}

TEST(AcmePebble, IssuanceSucceedsWhenTheCaRejectsHalfTheNonces) {
  pebble_ca ca({"PEBBLE_WFE_NONCEREJECT=50"});
  token_server tokens(ca.http01_port());
  auto client = make_client(ca);
  const auto got = client.order({"meters.example.test"}, tokens.responder());
  EXPECT_TRUE(verifies(got.chain_pem, ca.root(0), "meters.example.test"));
  EXPECT_GT(client.bad_nonces(), 0);
}

TEST(AcmePebble, AlternateChainsEndAtTheAlternateRoots) {
  pebble_ca ca({"PEBBLE_ALTERNATE_ROOTS=1"});
  token_server tokens(ca.http01_port());
  auto client = make_client(ca);
  const auto got = client.order({"meters.example.test"}, tokens.responder());
  ASSERT_EQ(got.alternate_chains_pem.size(), 1u);
  EXPECT_TRUE(verifies(got.chain_pem, ca.root(0), "meters.example.test"));
  EXPECT_TRUE(verifies(got.alternate_chains_pem[0], ca.root(1), "meters.example.test"));
  EXPECT_FALSE(verifies(got.alternate_chains_pem[0], ca.root(0), "meters.example.test"));
}

TEST(AcmePebble, AFailedChallengeNamesTheProblem) {
  pebble_ca ca({});
  token_server tokens(ca.http01_port());
  auto client = make_client(ca);
  // Nothing is served for the token: Pebble's validation gets a 404.
  try {
    client.order({"meters.example.test"},
                 {"http-01", [](const std::string&, const std::string&, const std::string&) {}});
    FAIL() << "an order without its token served was issued";
  } catch (const acme::acme_error& e) {
    EXPECT_EQ(e.type(), "urn:ietf:params:acme:error:unauthorized") << e.what();
  }
}

}  // namespace
}  // namespace locomov::test
