#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;

namespace locomov::net {

class tls_alpn_challenges;

/// TLS settings shared by every listener. The defaults accept the fleet's
/// SimpleLink firmware (TLS 1.2, TLS_RSA_WITH_AES_256_CBC_SHA) as well as
/// modern clients (TLS 1.3, ECDHE).
struct tls_settings {
  std::filesystem::path cert_file;      ///< PEM, leaf first, then intermediates
  std::filesystem::path key_file;       ///< PEM private key (RSA-2048 for the fleet)
  std::string min_version = "TLSv1.2";  ///< TLSv1.2 or TLSv1.3
  /// TLS 1.2 cipher list in OpenSSL syntax.
  std::string ciphers =
      "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES:AES256-SHA:AES128-SHA:AES256-SHA256:AES128-SHA256";
  /// TLS 1.3 suites in OpenSSL syntax.
  std::string ciphersuites =
      "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
  /// Key exchange groups, in preference order.
  std::string groups = "X25519:P-256:P-384";
  /// ACME TLS-ALPN-01 challenges to answer; null: handshakes offering
  /// `acme-tls/1` are treated like any other.
  std::shared_ptr<tls_alpn_challenges> alpn_challenges;
};

struct ssl_ctx_deleter {
  void operator()(SSL_CTX* ctx) const;
};
using ssl_ctx_ptr = std::shared_ptr<SSL_CTX>;

/// Builds a server context from the settings: loads and checks the key pair,
/// applies versions, ciphers and groups, enables session resumption and
/// SSL_MODE_RELEASE_BUFFERS, and answers TLS-ALPN-01 challenges when
/// `settings.alpn_challenges` is set. Throws std::runtime_error saying which setting
/// or file is wrong, with OpenSSL's reason.
ssl_ctx_ptr make_server_context(const tls_settings& settings);

/// The `groups` setting a context from make_server_context was built with
/// (OpenSSL has no getter for a server's own groups), for diagnostics; empty
/// for other contexts.
std::string configured_groups(const SSL_CTX* ctx);

/// SHA-256 fingerprints of the certificates `ctx` serves, leaf first, then
/// its intermediates, as `openssl x509 -noout -fingerprint -sha256` prints
/// them (upper-case hex pairs joined by colons). Empty for a context with no
/// certificate. Tells whether a reload brought a new chain, and names it in
/// log lines.
std::vector<std::string> certificate_fingerprints(SSL_CTX* ctx);

/// When the context's certificate expires (its notAfter), in seconds since
/// the Unix epoch; 0 for a context with no certificate.
std::int64_t certificate_not_after(SSL_CTX* ctx);

/// Paths of a self-signed CA and a server certificate it signed.
struct self_signed_paths {
  std::filesystem::path ca_cert;
  std::filesystem::path ca_key;
  std::filesystem::path cert;
  std::filesystem::path key;
};

/// Makes, under `dir`, a local CA (ca.crt, ca.key) and an RSA-2048 server
/// certificate it signs (server.crt, server.key) for `names` (DNS names or
/// IP addresses, all put in subjectAltName), unless they already exist.
/// Keys are written mode 0600. Throws std::runtime_error on failure.
self_signed_paths ensure_self_signed(const std::filesystem::path& dir,
                                     const std::vector<std::string>& names);

/// A certificate and its key, PEM.
struct pem_pair {
  std::string cert;
  std::string key;
};

/// The certificate an ACME CA validates over TLS-ALPN-01 (RFC 8737): self-
/// signed, ECDSA P-256, valid for a week, naming only the DNS name `name`,
/// with the critical acmeIdentifier extension holding `digest` (the
/// SHA-256 of a key authorization, 32 bytes). Throws std::runtime_error.
pem_pair make_acme_validation_certificate(const std::string& name, const std::string& digest);

}  // namespace locomov::net
