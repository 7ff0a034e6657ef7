#include "net/tls_alpn_challenges.hpp"

#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "net/tls_context.hpp"
#include "net/tls_session.hpp"
#include "tests/net/tls_test_support.hpp"

namespace locomov::net {
namespace {

const std::string name = "meters.example.test";
const std::string authorization = "token-123.thumbprint-456";

/// A handshake against `ctx` from a client offering `alpn` (none when
/// empty) for `server_name` (no SNI when empty).
struct handshake {
  test::client_ctx_ptr client_ctx = test::make_client_context(test::client_options{});
  std::unique_ptr<tls_session> server;
  std::unique_ptr<test::tls_client> client;

  handshake(SSL_CTX* ctx, const std::string& server_name, const std::string& alpn) {
    server = std::make_unique<tls_session>(ctx);
    client = std::make_unique<test::tls_client>(client_ctx.get());
    if (!server_name.empty()) {
      SSL_set_tlsext_host_name(client->ssl(), server_name.c_str());
    }
    if (!alpn.empty()) {
      const std::string wire = std::string(1, static_cast<char>(alpn.size())) + alpn;
      SSL_set_alpn_protos(client->ssl(), reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size()));
    }
    std::string plain;
    test::pump(*client, *server, plain);
  }

  std::string selected_alpn() const {
    const unsigned char* data = nullptr;
    unsigned int size = 0;
    SSL_get0_alpn_selected(client->ssl(), &data, &size);
    return std::string(reinterpret_cast<const char*>(data), size);
  }

  /// The acmeIdentifier extension's value in the served certificate, with
  /// whether it is critical; empty when there is none.
  std::pair<std::string, bool> acme_identifier() const {
    X509* cert = SSL_get1_peer_certificate(client->ssl());
    std::pair<std::string, bool> found{"", false};
    if (cert == nullptr) {
      return found;
    }
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    const int at = X509_get_ext_by_OBJ(cert, oid, -1);
    if (at >= 0) {
      X509_EXTENSION* ext = X509_get_ext(cert, at);
      const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(ext);
      const unsigned char* der = ASN1_STRING_get0_data(value);
      ASN1_OCTET_STRING* inner = d2i_ASN1_OCTET_STRING(nullptr, &der, ASN1_STRING_length(value));
      if (inner != nullptr) {
        found.first.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(inner)),
                           static_cast<std::size_t>(ASN1_STRING_length(inner)));
        ASN1_OCTET_STRING_free(inner);
      }
      found.second = X509_EXTENSION_get_critical(ext) == 1;
    }
    ASN1_OBJECT_free(oid);
    X509_free(cert);
    return found;
  }

  bool peer_names(const std::string& host) const {
    X509* cert = SSL_get1_peer_certificate(client->ssl());
    const bool ok = cert != nullptr && X509_check_host(cert, host.c_str(), host.size(), 0,
                                                       nullptr) == 1;
    X509_free(cert);
    return ok;
  }
};

class TlsAlpnChallenges : public ::testing::Test {
 protected:
  test::test_pki pki_;
  std::shared_ptr<tls_alpn_challenges> challenges_ = std::make_shared<tls_alpn_challenges>();

  ssl_ctx_ptr context() {
    auto settings = pki_.settings();
    settings.alpn_challenges = challenges_;
    return make_server_context(settings);
  }
};

TEST_F(TlsAlpnChallenges, AValidatorGetsTheCertificateHoldingTheKeyAuthorizationDigest) {
  challenges_->set(name, authorization);
  auto ctx = context();

  // Names are matched as DNS names are: without regard to case.
  handshake h(ctx.get(), "Meters.Example.Test", "acme-tls/1");

  ASSERT_EQ(h.server->current(), tls_session::state::established) << h.server->error();
  EXPECT_EQ(h.selected_alpn(), "acme-tls/1");
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(authorization.data()), authorization.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  const auto [value, critical] = h.acme_identifier();
  EXPECT_EQ(value, digest);
  EXPECT_TRUE(critical);
  EXPECT_TRUE(h.peer_names(name));
}

TEST_F(TlsAlpnChallenges, DevicesWithoutAlpnKeepTheCertificateInService) {
  challenges_->set(name, authorization);
  auto ctx = context();

  handshake device(ctx.get(), "", "");

  ASSERT_EQ(device.server->current(), tls_session::state::established);
  EXPECT_EQ(device.selected_alpn(), "");
  EXPECT_EQ(device.acme_identifier().first, "");
  EXPECT_TRUE(device.peer_names("localhost"));
}

TEST_F(TlsAlpnChallenges, AValidationForANameWithNoChallengeFails) {
  challenges_->set(name, authorization);
  auto ctx = context();

  handshake other(ctx.get(), "other.example.test", "acme-tls/1");
  EXPECT_EQ(other.server->current(), tls_session::state::failed);

  challenges_->set(name, "");
  handshake withdrawn(ctx.get(), name, "acme-tls/1");
  EXPECT_EQ(withdrawn.server->current(), tls_session::state::failed);
}

TEST_F(TlsAlpnChallenges, AContextInServiceAnswersAChallengeSetLater) {
  // The listeners' context is made at start; the ACME actor sets the
  // challenge when it orders, days later.
  auto in_service = context();
  challenges_->set(name, authorization);

  handshake h(in_service.get(), name, "acme-tls/1");
  ASSERT_EQ(h.server->current(), tls_session::state::established) << h.server->error();
  EXPECT_FALSE(h.acme_identifier().first.empty());
}

}  // namespace
}  // namespace locomov::net
