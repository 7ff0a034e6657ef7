#include "net/tls_context.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/net/tls_test_support.hpp"

namespace locomov::net {
namespace {

namespace fs = std::filesystem;
using test::temp_dir;

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

unsigned file_mode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

struct x509_deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using x509_ptr = std::unique_ptr<X509, x509_deleter>;

x509_ptr load_certificate(const fs::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file{std::fopen(path.c_str(), "r"), &std::fclose};
  if (!file) {
    return nullptr;
  }
  return x509_ptr{PEM_read_X509(file.get(), nullptr, nullptr, nullptr)};
}

/// Checks that `what()` of the exception `fn` throws contains every one of `parts`.
template <class Fn>
void expect_error_naming(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    for (const auto& part : parts) {
      EXPECT_NE(std::string{e.what()}.find(part), std::string::npos)
          << "'" << e.what() << "' lacks '" << part << "'";
    }
  }
}

TEST(EnsureSelfSigned, CreatesPrivateDirectoryAndKeyFiles) {
  temp_dir scratch;
  const fs::path dir = scratch.path() / "state" / "tls";

  const self_signed_paths paths = ensure_self_signed(dir, {"localhost", "127.0.0.1"});

  EXPECT_EQ(paths.ca_cert, dir / "ca.crt");
  EXPECT_EQ(paths.ca_key, dir / "ca.key");
  EXPECT_EQ(paths.cert, dir / "server.crt");
  EXPECT_EQ(paths.key, dir / "server.key");
  EXPECT_EQ(file_mode(dir), 0700u);
  EXPECT_EQ(file_mode(paths.ca_key), 0600u);
  EXPECT_EQ(file_mode(paths.key), 0600u);
  EXPECT_EQ(file_mode(paths.ca_cert), 0644u);
  EXPECT_EQ(file_mode(paths.cert), 0644u);
  for (const auto& entry : fs::directory_iterator{dir}) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << "left behind";
  }
}

TEST(EnsureSelfSigned, SecondCallKeepsExistingFiles) {
  test::test_pki pki;
  const std::string ca_key = read_file(pki.paths.ca_key);
  const std::string cert = read_file(pki.paths.cert);

  const self_signed_paths again = ensure_self_signed(pki.dir.path() / "tls", {"other.example"});

  EXPECT_EQ(read_file(again.ca_key), ca_key);
  EXPECT_EQ(read_file(again.cert), cert);
}

TEST(EnsureSelfSigned, RegeneratesAnIncompleteSet) {
  test::test_pki pki;
  const std::string old_cert = read_file(pki.paths.cert);
  fs::remove(pki.paths.key);

  ensure_self_signed(pki.dir.path() / "tls", {"localhost"});

  EXPECT_NE(read_file(pki.paths.cert), old_cert);
  EXPECT_NO_THROW(make_server_context(pki.settings()));
}

TEST(EnsureSelfSigned, CertificatesHaveTheFleetProfile) {
  test::test_pki pki;
  x509_ptr ca = load_certificate(pki.paths.ca_cert);
  x509_ptr cert = load_certificate(pki.paths.cert);
  ASSERT_TRUE(ca);
  ASSERT_TRUE(cert);

  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  char ca_cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca.get()), NID_commonName, ca_cn, sizeof(ca_cn));
  EXPECT_EQ(std::string{ca_cn}.rfind("locomov local CA ", 0), 0u) << ca_cn;

  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 2048);
  EXPECT_TRUE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER);
  EXPECT_TRUE(X509_get_key_usage(cert.get()) & KU_KEY_ENCIPHERMENT);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  // An IP address must not be written as a DNS name, or clients would not match it.
  EXPECT_NE(X509_check_host(cert.get(), "127.0.0.1", 0, 0, nullptr), 1);

  // Roughly two years for the server, ten for the CA.
  int days = 0;
  int secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_GT(days, 700);
  EXPECT_LT(days, 800);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(ca.get())), 1);
  EXPECT_GT(days, 3600);
}

TEST(EnsureSelfSigned, RejectsNamesThatAreNeitherHostNorAddress) {
  temp_dir scratch;
  EXPECT_THROW(ensure_self_signed(scratch.path() / "tls", {}), std::runtime_error);
  expect_error_naming([&] { ensure_self_signed(scratch.path() / "tls", {"bad name,x"}); },
                      {"'bad name,x'"});
}

/// Connects a client that verifies the server against ca.crt for `host` or `ip`.
bool client_verifies(const test::test_pki& pki, const char* host, const char* ip) {
  ssl_ctx_ptr server_ctx = make_server_context(pki.settings());
  test::client_ctx_ptr client_ctx =
      test::make_client_context(test::client_options{}.verifying_with(pki.paths.ca_cert));
  tls_session server{server_ctx.get()};
  test::tls_client client{client_ctx.get()};
  if (host != nullptr) {
    SSL_set1_host(client.ssl(), host);
  }
  if (ip != nullptr) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(client.ssl()), ip);
  }
  std::string plain;
  test::pump(client, server, plain);
  return client.established() && !client.failed() &&
         SSL_get_verify_result(client.ssl()) == X509_V_OK;
}

TEST(EnsureSelfSigned, ClientVerifiesServerForLocalhostAndLoopbackAddresses) {
  test::test_pki pki;
  EXPECT_TRUE(client_verifies(pki, "localhost", nullptr));
  EXPECT_TRUE(client_verifies(pki, nullptr, "127.0.0.1"));
  EXPECT_TRUE(client_verifies(pki, nullptr, "::1"));
  EXPECT_FALSE(client_verifies(pki, "meters.example.org", nullptr));
  EXPECT_FALSE(client_verifies(pki, nullptr, "10.0.0.1"));
}

class MakeServerContext : public ::testing::Test {
 protected:
  test::test_pki pki_;
};

TEST_F(MakeServerContext, BuildsFromDefaultsAtSecurityLevelTwo) {
  ssl_ctx_ptr ctx = make_server_context(pki_.settings());
  ASSERT_TRUE(ctx);
  EXPECT_EQ(SSL_CTX_get_security_level(ctx.get()), 2);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx.get()), TLS1_2_VERSION);
  EXPECT_TRUE(SSL_CTX_get_options(ctx.get()) & SSL_OP_CIPHER_SERVER_PREFERENCE);
  EXPECT_TRUE(SSL_CTX_get_options(ctx.get()) & SSL_OP_NO_RENEGOTIATION);
  EXPECT_TRUE(SSL_CTX_get_mode(ctx.get()) & SSL_MODE_RELEASE_BUFFERS);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(MakeServerContext, MissingCertFileIsNamed) {
  tls_settings settings = pki_.settings();
  settings.cert_file = pki_.dir.path() / "missing.crt";
  expect_error_naming([&] { make_server_context(settings); },
                      {"cert_file", settings.cert_file.string(), "No such file"});
}

TEST_F(MakeServerContext, MissingKeyFileIsNamed) {
  tls_settings settings = pki_.settings();
  settings.key_file = pki_.dir.path() / "missing.key";
  expect_error_naming([&] { make_server_context(settings); },
                      {"key_file", settings.key_file.string()});
}

TEST_F(MakeServerContext, KeyNotMatchingCertificateIsNamed) {
  tls_settings settings = pki_.settings();
  settings.key_file = pki_.paths.ca_key;
  expect_error_naming([&] { make_server_context(settings); },
                      {"key_file", pki_.paths.ca_key.string(), "key values mismatch"});
}

TEST_F(MakeServerContext, BadCipherStringIsNamed) {
  tls_settings settings = pki_.settings();
  settings.ciphers = "NOT-A-CIPHER";
  expect_error_naming([&] { make_server_context(settings); },
                      {"ciphers 'NOT-A-CIPHER'", "no cipher match"});
}

TEST_F(MakeServerContext, BadGroupIsNamed) {
  tls_settings settings = pki_.settings();
  settings.groups = "X25519:P-999";
  expect_error_naming([&] { make_server_context(settings); }, {"groups 'X25519:P-999'"});
}

TEST_F(MakeServerContext, CiphersuitesMatchingNothingAreNamed) {
  tls_settings settings = pki_.settings();
  settings.ciphersuites = "TLS_NOT_A_SUITE";
  expect_error_naming([&] { make_server_context(settings); }, {"ciphersuites 'TLS_NOT_A_SUITE'"});
}

TEST_F(MakeServerContext, UnknownMinVersionIsRejected) {
  tls_settings settings = pki_.settings();
  for (const char* bad : {"TLSv1.1", "tls1.2", "", "SSLv3"}) {
    settings.min_version = bad;
    expect_error_naming([&] { make_server_context(settings); },
                        {"min_version '" + std::string{bad} + "'", "TLSv1.2 or TLSv1.3"});
  }
}

TEST_F(MakeServerContext, MinVersionTls13RefusesTls12Clients) {
  tls_settings settings = pki_.settings();
  settings.min_version = "TLSv1.3";
  ssl_ctx_ptr ctx = make_server_context(settings);
  test::client_ctx_ptr client_ctx = test::make_client_context(test::tls12_client());
  tls_session server{ctx.get()};
  test::tls_client client{client_ctx.get()};
  std::string plain;

  test::pump(client, server, plain);

  EXPECT_EQ(server.current(), tls_session::state::failed);
  EXPECT_EQ(server.error(), "unsupported protocol");
}

/// SHA-256 of the first certificate in `path`, in openssl x509 -fingerprint's format.
std::string file_fingerprint(const fs::path& path) {
  x509_ptr cert = load_certificate(path);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EXPECT_EQ(X509_digest(cert.get(), EVP_sha256(), digest, &size), 1);
  std::string text;
  char pair[4];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(pair, sizeof(pair), i == 0 ? "%02X" : ":%02X", digest[i]);
    text += pair;
  }
  return text;
}

TEST_F(MakeServerContext, FingerprintsNameTheLeafThenTheChain) {
  const fs::path chain = pki_.dir.path() / "chain.crt";
  std::ofstream{chain} << read_file(pki_.paths.cert) << read_file(pki_.paths.ca_cert);
  tls_settings settings = pki_.settings();
  settings.cert_file = chain;

  const auto leaf_only = certificate_fingerprints(make_server_context(pki_.settings()).get());
  const auto with_chain = certificate_fingerprints(make_server_context(settings).get());

  ASSERT_EQ(leaf_only.size(), 1u);
  EXPECT_EQ(leaf_only[0], file_fingerprint(pki_.paths.cert));
  EXPECT_EQ(leaf_only[0].size(), 32u * 3 - 1);
  ASSERT_EQ(with_chain.size(), 2u);
  EXPECT_EQ(with_chain[0], leaf_only[0]);
  EXPECT_EQ(with_chain[1], file_fingerprint(pki_.paths.ca_cert));
}

TEST_F(MakeServerContext, FingerprintsTellKeyPairsApart) {
  test::test_pki other;

  const auto mine = certificate_fingerprints(make_server_context(pki_.settings()).get());
  const auto again = certificate_fingerprints(make_server_context(pki_.settings()).get());
  const auto theirs = certificate_fingerprints(make_server_context(other.settings()).get());

  EXPECT_EQ(mine, again);
  EXPECT_NE(mine, theirs);
}

}  // namespace
}  // namespace locomov::net
