#include "tls_client.hpp"

#include <arpa/inet.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace locomov::bench {

namespace {

bool is_ip_literal(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// ---- OpenSSL -------------------------------------------------------------------------------

struct ssl_ctx_deleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct ssl_deleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct ssl_session_deleter {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_deleter>;
using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;
using ssl_session_ptr = std::unique_ptr<SSL_SESSION, ssl_session_deleter>;

std::string openssl_reason() {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) {
    return "closed by server";
  }
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : "unknown OpenSSL error";
}

ssl_ctx_ptr make_openssl_context(const tls_client_options& o) {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  if (!ctx) {
    throw std::invalid_argument("cannot create a TLS context: " + openssl_reason());
  }
  const int max = o.tls_max == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), max);
  if (SSL_CTX_set_cipher_list(ctx.get(), o.cipher.c_str()) != 1) {
    throw std::invalid_argument("--cipher '" + o.cipher + "' names no usable suite");
  }
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!o.session_resume) {
    // Devices do full handshakes; do not even ask for tickets.
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  }
  if (o.insecure) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), o.ca_file.c_str(), nullptr) != 1) {
    throw std::invalid_argument("cannot load CA file '" + o.ca_file + "': " + openssl_reason());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

class openssl_session final : public tls_session {
 public:
  openssl_session(ssl_ptr ssl, ssl_session_ptr& kept) : ssl_(std::move(ssl)), kept_(kept) {}

  tls_io handshake() override {
    begin();
    const int rc = SSL_connect(ssl_.get());
    if (rc == 1) {
      return tls_io::ok;
    }
    const tls_io io = outcome(rc);
    // Checked only once the handshake failed: without verification the
    // result is recorded but the handshake goes on.
    if (io == tls_io::failed && SSL_get_verify_result(ssl_.get()) != X509_V_OK) {
      error_ = std::string("certificate: ") +
               X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get()));
    }
    return io;
  }

  tls_io write(const char* data, std::size_t size, std::size_t& written) override {
    begin();
    written = 0;
    const int rc = SSL_write(ssl_.get(), data, static_cast<int>(size));
    if (rc > 0) {
      written = static_cast<std::size_t>(rc);
      return tls_io::ok;
    }
    return outcome(rc);
  }

  tls_io read(char* buf, std::size_t size, std::size_t& got) override {
    begin();
    got = 0;
    if (SSL_read_ex(ssl_.get(), buf, size, &got) == 1) {
      return tls_io::ok;
    }
    return outcome(0);
  }

  void close_notify() override {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }

  std::string error() const override { return error_; }
  bool resumed() const override { return SSL_session_reused(ssl_.get()) == 1; }
  std::string negotiated() const override {
    return std::string(SSL_get_version(ssl_.get())) + " " + SSL_get_cipher_name(ssl_.get());
  }
  void keep_for_resume() override { kept_.reset(SSL_get1_session(ssl_.get())); }

 private:
  void begin() {
    ERR_clear_error();
    errno = 0;
  }

  tls_io outcome(int rc) {
    switch (SSL_get_error(ssl_.get(), rc)) {
      case SSL_ERROR_WANT_READ:
        return tls_io::want_read;
      case SSL_ERROR_WANT_WRITE:
        return tls_io::want_write;
      case SSL_ERROR_ZERO_RETURN:
        return tls_io::closed;
      case SSL_ERROR_SYSCALL:
        if (errno != 0) {
          error_ = std::strerror(errno);
          ERR_clear_error();
          return tls_io::failed;
        }
        break;
      default:
        break;
    }
    error_ = openssl_reason();
    return tls_io::failed;
  }

  ssl_ptr ssl_;
  ssl_session_ptr& kept_;
  std::string error_;
};

class openssl_client final : public tls_client {
 public:
  openssl_client(const tls_client_options& o, std::size_t slots)
      : options_(o), ctx_(make_openssl_context(o)), kept_(slots) {}

  std::unique_ptr<tls_session> open(int fd, std::size_t slot) override {
    ERR_clear_error();
    ssl_ptr ssl{SSL_new(ctx_.get())};
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
      return nullptr;
    }
    const std::string& name = options_.verify_name;
    if (!options_.insecure) {
      if (is_ip_literal(name)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str());
      } else {
        SSL_set1_host(ssl.get(), name.c_str());
      }
    }
    if (!is_ip_literal(name)) {
      SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    }
    ssl_session_ptr& kept = kept_.at(slot);
    if (options_.session_resume && kept) {
      SSL_set_session(ssl.get(), kept.get());
    }
    return std::make_unique<openssl_session>(std::move(ssl), kept);
  }

 private:
  tls_client_options options_;
  ssl_ctx_ptr ctx_;
  std::vector<ssl_session_ptr> kept_;  // one per connection slot, for --session-resume
};

// ---- mbedTLS -------------------------------------------------------------------------------

std::string mbedtls_reason(int code) {
  char buf[160];
  mbedtls_strerror(code, buf, sizeof buf);
  return buf;
}

/// mbedTLS suite ids for an OpenSSL cipher list: OpenSSL expands the list
/// and names each suite by its RFC name, which mbedTLS spells with dashes.
std::vector<int> mbedtls_suites(const std::string& cipher) {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  if (!ctx || SSL_CTX_set_cipher_list(ctx.get(), cipher.c_str()) != 1) {
    ERR_clear_error();
    throw std::invalid_argument("--cipher '" + cipher + "' names no usable suite");
  }
  std::vector<int> ids;
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx.get());
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    std::string name = SSL_CIPHER_standard_name(sk_SSL_CIPHER_value(ciphers, i));
    std::replace(name.begin(), name.end(), '_', '-');
    if (const int id = mbedtls_ssl_get_ciphersuite_id(name.c_str()); id != 0) {
      ids.push_back(id);
    }
  }
  if (ids.empty()) {
    throw std::invalid_argument("--cipher '" + cipher + "' names no TLS 1.2 suite mbedTLS has");
  }
  ids.push_back(0);  // mbedTLS reads the list up to a zero
  return ids;
}

/// Socket callbacks that tell mbedTLS "would block" without the fcntl call
/// mbedtls_net_recv makes on every EAGAIN.
int mbedtls_send(void* ctx, const unsigned char* buf, std::size_t len) {
  const ssize_t n = ::send(*static_cast<int*>(ctx), buf, len, MSG_NOSIGNAL);
  if (n >= 0) {
    return static_cast<int>(n);
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    return MBEDTLS_ERR_SSL_WANT_WRITE;
  }
  return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET
                                               : MBEDTLS_ERR_NET_SEND_FAILED;
}

int mbedtls_recv(void* ctx, unsigned char* buf, std::size_t len) {
  const ssize_t n = ::recv(*static_cast<int*>(ctx), buf, len, 0);
  if (n >= 0) {
    return static_cast<int>(n);
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    return MBEDTLS_ERR_SSL_WANT_READ;
  }
  return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
}

class mbedtls_session final : public tls_session {
 public:
  mbedtls_session(const mbedtls_ssl_config& config, int fd, const std::string& name) : fd_(fd) {
    mbedtls_ssl_init(&ssl_);
    if (const int rc = mbedtls_ssl_setup(&ssl_, &config); rc != 0) {
      mbedtls_ssl_free(&ssl_);
      throw std::runtime_error("mbedtls_ssl_setup: " + mbedtls_reason(rc));
    }
    if (!is_ip_literal(name)) {
      mbedtls_ssl_set_hostname(&ssl_, name.c_str());
    }
    mbedtls_ssl_set_bio(&ssl_, &fd_, mbedtls_send, mbedtls_recv, nullptr);
  }
  ~mbedtls_session() override { mbedtls_ssl_free(&ssl_); }
  mbedtls_session(const mbedtls_session&) = delete;
  mbedtls_session& operator=(const mbedtls_session&) = delete;

  tls_io handshake() override { return outcome(mbedtls_ssl_handshake(&ssl_)); }

  tls_io write(const char* data, std::size_t size, std::size_t& written) override {
    const int rc = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data), size);
    written = rc > 0 ? static_cast<std::size_t>(rc) : 0;
    return rc > 0 ? tls_io::ok : outcome(rc);
  }

  tls_io read(char* buf, std::size_t size, std::size_t& got) override {
    const int rc = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(buf), size);
    got = rc > 0 ? static_cast<std::size_t>(rc) : 0;
    if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      return tls_io::closed;
    }
    return rc > 0 ? tls_io::ok : outcome(rc);
  }

  void close_notify() override { mbedtls_ssl_close_notify(&ssl_); }

  std::string error() const override { return error_; }
  bool resumed() const override { return false; }
  std::string negotiated() const override {
    return std::string(mbedtls_ssl_get_version(&ssl_)) + " " + mbedtls_ssl_get_ciphersuite(&ssl_);
  }
  void keep_for_resume() override {}

 private:
  tls_io outcome(int rc) {
    if (rc == 0) {
      return tls_io::ok;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ) {
      return tls_io::want_read;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
      return tls_io::want_write;
    }
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
      char info[256];
      mbedtls_x509_crt_verify_info(info, sizeof info, "", mbedtls_ssl_get_verify_result(&ssl_));
      std::string reason(info);
      while (!reason.empty() && reason.back() == '\n') {
        reason.pop_back();
      }
      error_ = "certificate: " + reason;
    } else if (rc == MBEDTLS_ERR_NET_CONN_RESET || rc == MBEDTLS_ERR_NET_RECV_FAILED ||
               rc == MBEDTLS_ERR_NET_SEND_FAILED) {
      error_ = errno != 0 ? std::strerror(errno) : mbedtls_reason(rc);
    } else {
      error_ = mbedtls_reason(rc);
    }
    return tls_io::failed;
  }

  int fd_;
  mbedtls_ssl_context ssl_;
  std::string error_;
};

/// mbedTLS's contexts for one client, freed in one place whether or not
/// the client's set-up finished.
struct mbedtls_contexts {
  mbedtls_contexts() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&ca);
    mbedtls_ssl_config_init(&config);
  }
  ~mbedtls_contexts() {
    mbedtls_ssl_config_free(&config);
    mbedtls_x509_crt_free(&ca);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  mbedtls_contexts(const mbedtls_contexts&) = delete;
  mbedtls_contexts& operator=(const mbedtls_contexts&) = delete;

  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt ca;
  mbedtls_ssl_config config;
};

class mbedtls_client final : public tls_client {
 public:
  explicit mbedtls_client(const tls_client_options& o)
      : verify_name_(o.verify_name), suites_(mbedtls_suites(o.cipher)) {
    if (o.tls_max != "1.2") {
      throw std::invalid_argument("--client mbedtls speaks TLS 1.2 only; give --tls-max 1.2");
    }
    if (o.session_resume) {
      throw std::invalid_argument("--session-resume needs --client openssl");
    }
    auto& c = contexts_;
    if (const int rc = mbedtls_ctr_drbg_seed(&c.drbg, mbedtls_entropy_func, &c.entropy, nullptr, 0);
        rc != 0) {
      throw std::invalid_argument("cannot seed mbedTLS's generator: " + mbedtls_reason(rc));
    }
    mbedtls_ssl_config_defaults(&c.config, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                MBEDTLS_SSL_PRESET_DEFAULT);
    mbedtls_ssl_conf_min_version(&c.config, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c.config, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c.config, suites_.data());
    mbedtls_ssl_conf_rng(&c.config, mbedtls_ctr_drbg_random, &c.drbg);
    // Devices do full handshakes: no tickets asked for.
    mbedtls_ssl_conf_session_tickets(&c.config, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    if (o.insecure) {
      mbedtls_ssl_conf_authmode(&c.config, MBEDTLS_SSL_VERIFY_NONE);
      return;
    }
    if (is_ip_literal(o.verify_name)) {
      throw std::invalid_argument(
          "mbedTLS 2.28 cannot match an IP address in a certificate; give --servername with "
          "a DNS name the certificate holds (localhost for locomov's self-signed one)");
    }
    if (const int rc = mbedtls_x509_crt_parse_file(&c.ca, o.ca_file.c_str()); rc != 0) {
      throw std::invalid_argument("cannot load CA file '" + o.ca_file + "': " + mbedtls_reason(rc));
    }
    mbedtls_ssl_conf_ca_chain(&c.config, &c.ca, nullptr);
    mbedtls_ssl_conf_authmode(&c.config, MBEDTLS_SSL_VERIFY_REQUIRED);
  }

  std::unique_ptr<tls_session> open(int fd, std::size_t /*slot*/) override {
    return std::make_unique<mbedtls_session>(contexts_.config, fd, verify_name_);
  }

 private:
  std::string verify_name_;
  std::vector<int> suites_;  // the config points into it
  mbedtls_contexts contexts_;
};

}  // namespace

std::unique_ptr<tls_client> make_tls_client(const tls_client_options& options, std::size_t slots) {
  if (options.library == tls_library::mbedtls) {
    return std::make_unique<mbedtls_client>(options);
  }
  return std::make_unique<openssl_client>(options, slots);
}

}  // namespace locomov::bench
