#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace locomov::acme {

/// A problem document from the CA (RFC 8555 section 6.7), or a transport
/// failure (type empty), as an exception.
class acme_error : public std::runtime_error {
 public:
  acme_error(std::string type, const std::string& detail, long status,
             std::chrono::seconds retry_after = std::chrono::seconds(0));
  /// "urn:ietf:params:acme:error:rateLimited", ...; empty for transport errors.
  const std::string& type() const { return type_; }
  long status() const { return status_; }
  /// The CA's Retry-After, 0 when it gave none.
  std::chrono::seconds retry_after() const { return retry_after_; }

 private:
  std::string type_;
  long status_;
  std::chrono::seconds retry_after_;
};

/// How to reach the CA and who the account is.
struct client_settings {
  std::string directory_url;  ///< https://acme-v02.api.letsencrypt.org/directory
  std::string email;          ///< account contact; empty: none
  std::string ca_file;        ///< trust for the CA's own HTTPS; empty: the system's
  std::string account_key_pem;  ///< ECDSA P-256 private key, PEM
  std::chrono::seconds poll_limit{std::chrono::minutes(2)};  ///< per authorization and order
  /// badNonce answers retried with the fresh nonce before giving up.
  int nonce_retries = 10;
  /// Set from another thread to abandon the exchange under way within about
  /// a second (locomov stopping): the call then throws acme_error. Null:
  /// requests run to their 30 s timeout.
  std::shared_ptr<const std::atomic<bool>> cancelled;
};

/// A certificate the CA issued: the chain served, and what else it offered.
struct issued {
  std::string chain_pem;  ///< leaf first, then intermediates
  std::string key_pem;    ///< the certificate's private key
  std::vector<std::string> alternate_chains_pem;  ///< from Link: rel="alternate"
};

/// Answers one type of challenge ("http-01" or "tls-alpn-01"): `answer` is
/// called with the identifier's name, the challenge's token and its key
/// authorization before the CA is told to look, and with an empty
/// authorization once it is done. HTTP-01 serves the authorization at
/// /.well-known/acme-challenge/TOKEN; TLS-ALPN-01 a validation certificate
/// for the name (net::tls_alpn_challenges).
struct challenge_responder {
  std::string type = "http-01";
  std::function<void(const std::string& name, const std::string& token,
                     const std::string& key_authorization)>
      answer;
};

/// An ECDSA P-256 key for an account, PEM.
std::string make_account_key();

/// An ACME client (RFC 8555) for one account: registration, an order for a
/// set of names answered over HTTP-01 or TLS-ALPN-01, finalization with a
/// CSR for a fresh key (RSA-2048, or ECDSA P-256), and the download of the
/// chain. HTTP goes
/// through libcurl; JWS (ES256) and the CSR through OpenSSL. Blocking: run
/// it on a thread of its own. Throws acme_error.
class client {
 public:
  explicit client(client_settings settings);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Registers the account, or finds it (the CA answers an existing key
  /// with its URL); agrees to the terms of service.
  void register_account();

  /// Orders a certificate for `names`, answers each authorization's
  /// challenge of `responder.type` through it, finalizes and downloads the
  /// chain.
  issued order(const std::vector<std::string>& names, const challenge_responder& responder,
               bool rsa_key = true);

  /// The account's URL (its kid) once registered.
  const std::string& account_url() const { return account_url_; }

  /// badNonce answers retried so far.
  int bad_nonces() const { return bad_nonces_; }

  /// The key authorization of `token` for this account.
  std::string key_authorization(const std::string& token) const;

 private:
  struct response;
  struct key;
  /// Performs the request set up on `curl` (a CURL*) for `url` with the
  /// options every request shares; keeps the nonce it brings.
  response perform(void* curl, const std::string& url);
  response post(const std::string& url, const std::string& payload);
  response get(const std::string& url, bool head = false);
  void load_directory();
  std::string fresh_nonce();
  response poll(const std::string& url, const char* until_not);
  void throw_if_cancelled() const;

  client_settings settings_;
  std::unique_ptr<key> key_;
  std::string new_nonce_url_, new_account_url_, new_order_url_;
  std::string nonce_;
  std::string account_url_;
  int bad_nonces_ = 0;
};

}  // namespace locomov::acme
