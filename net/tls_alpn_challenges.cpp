#include "net/tls_alpn_challenges.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string_view>

#include "net/openssl_error.hpp"
#include "net/tls_context.hpp"

namespace locomov::net {

namespace {

constexpr std::string_view acme_tls_protocol = "acme-tls/1";

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

/// Whether the ALPN extension's protocol list (RFC 7301) names acme-tls/1.
bool offers_acme_tls(const unsigned char* ext, std::size_t size) {
  if (size < 2 || static_cast<std::size_t>((ext[0] << 8) | ext[1]) != size - 2) {
    return false;
  }
  for (std::size_t at = 2; at < size;) {
    const std::size_t length = ext[at];
    if (at + 1 + length > size) {
      return false;
    }
    if (std::string_view(reinterpret_cast<const char*>(ext + at + 1), length) ==
        acme_tls_protocol) {
      return true;
    }
    at += 1 + length;
  }
  return false;
}

/// The host name of a server_name extension (RFC 6066), empty when it has none.
std::string host_name(const unsigned char* ext, std::size_t size) {
  if (size < 5 || static_cast<std::size_t>((ext[0] << 8) | ext[1]) != size - 2 || ext[2] != 0) {
    return {};
  }
  const std::size_t length = static_cast<std::size_t>((ext[3] << 8) | ext[4]);
  if (5 + length > size) {
    return {};
  }
  return lower(std::string(reinterpret_cast<const char*>(ext + 5), length));
}

int select_acme_tls(SSL*, const unsigned char** out, unsigned char* out_size,
                    const unsigned char* offered, unsigned int offered_size, void*) {
  static constexpr unsigned char ours[] = "\x0a"
                                          "acme-tls/1";
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_size, ours, sizeof ours - 1, offered, offered_size) !=
      OPENSSL_NPN_NEGOTIATED) {
    // Devices offer no ALPN: a handshake goes on without one.
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

void free_challenges(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<tls_alpn_challenges>*>(ptr);
}

int challenges_index() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_challenges);
  return index;
}

}  // namespace

struct tls_alpn_challenges::pair {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  ~pair() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

tls_alpn_challenges::tls_alpn_challenges() = default;
tls_alpn_challenges::~tls_alpn_challenges() = default;

void tls_alpn_challenges::set(const std::string& name, const std::string& key_authorization) {
  const auto host = lower(name);
  if (key_authorization.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    pairs_.erase(host);
    return;
  }
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(key_authorization.data()),
         key_authorization.size(), reinterpret_cast<unsigned char*>(digest.data()));
  const auto pem = make_acme_validation_certificate(host, digest);

  auto made = std::make_shared<pair>();
  BIO* cert_bio = BIO_new_mem_buf(pem.cert.data(), static_cast<int>(pem.cert.size()));
  BIO* key_bio = BIO_new_mem_buf(pem.key.data(), static_cast<int>(pem.key.size()));
  made->cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  made->key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  BIO_free(cert_bio);
  BIO_free(key_bio);
  if (made->cert == nullptr || made->key == nullptr) {
    throw std::runtime_error("TLS-ALPN-01 certificate for " + host + ": " +
                             detail::take_openssl_error());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  pairs_[host] = std::move(made);
}

std::shared_ptr<const tls_alpn_challenges::pair> tls_alpn_challenges::find(
    const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto found = pairs_.find(name);
  return found != pairs_.end() ? found->second : nullptr;
}

void tls_alpn_challenges::install(SSL_CTX* ctx,
                                  const std::shared_ptr<tls_alpn_challenges>& challenges) {
  auto held = std::make_unique<std::shared_ptr<tls_alpn_challenges>>(challenges);
  if (SSL_CTX_set_ex_data(ctx, challenges_index(), held.get()) != 1) {
    throw std::runtime_error("TLS-ALPN-01: " + detail::take_openssl_error());
  }
  held.release();  // freed with the context
  SSL_CTX_set_client_hello_cb(ctx, &tls_alpn_challenges::on_client_hello, challenges.get());
  SSL_CTX_set_alpn_select_cb(ctx, select_acme_tls, nullptr);
}

int tls_alpn_challenges::on_client_hello(SSL* ssl, int* alert, void* arg) {
  // The certificate must be chosen here, before OpenSSL picks one for the
  // ClientHello's signature algorithms, so the extensions are read raw.
  const unsigned char* ext = nullptr;
  std::size_t size = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &size) != 1 ||
      !offers_acme_tls(ext, size)) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  std::string name;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &size) == 1) {
    name = host_name(ext, size);
  }
  const auto challenge = static_cast<tls_alpn_challenges*>(arg)->find(name);
  // A validation for a name with no challenge under way fails rather than
  // getting the certificate in service.
  if (!challenge) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  // Cleared first, so that the RSA certificate in service cannot be picked
  // beside the P-256 one.
  SSL_certs_clear(ssl);
  if (SSL_use_certificate(ssl, challenge->cert) != 1 ||
      SSL_use_PrivateKey(ssl, challenge->key) != 1) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace locomov::net
