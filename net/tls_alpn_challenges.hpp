#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace locomov::net {

/// Answers ACME TLS-ALPN-01 challenges (RFC 8737) on the TLS listeners: a
/// handshake that offers the ALPN protocol `acme-tls/1` for a name with a
/// challenge set gets that name's validation certificate instead of the
/// one in service; every other handshake is untouched. Shared by every
/// context made while it lives (make_server_context installs it), so that
/// a certificate reload keeps the challenges answered. Safe from any thread.
class tls_alpn_challenges {
 public:
  tls_alpn_challenges();
  ~tls_alpn_challenges();
  tls_alpn_challenges(const tls_alpn_challenges&) = delete;
  tls_alpn_challenges& operator=(const tls_alpn_challenges&) = delete;

  /// Serves, for `name`, a self-signed certificate carrying the SHA-256 of
  /// `key_authorization` in its acmeIdentifier extension; an empty
  /// authorization stops serving it. Throws std::runtime_error when OpenSSL
  /// cannot make the certificate.
  void set(const std::string& name, const std::string& key_authorization);

  /// Has `ctx` answer the challenges set here: its handshakes look at the
  /// ClientHello's ALPN and server name. The context keeps this object
  /// alive.
  static void install(SSL_CTX* ctx, const std::shared_ptr<tls_alpn_challenges>& challenges);

 private:
  struct pair;
  static int on_client_hello(SSL* ssl, int* alert, void* arg);
  std::shared_ptr<const pair> find(const std::string& name);

  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const pair>> pairs_;
};

}  // namespace locomov::net
