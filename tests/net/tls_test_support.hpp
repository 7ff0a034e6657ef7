#pragma once

// Helpers for the net tests: a scratch directory, test certificates made by
// ensure_self_signed, and an OpenSSL client over memory BIOs to pair with a
// tls_session without sockets.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "net/tls_context.hpp"
#include "net/tls_session.hpp"

namespace locomov::net::test {

/// A fresh directory under the system temp dir, removed with its contents.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "locomov-net-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Server certificates for localhost, 127.0.0.1 and ::1 in a scratch directory.
struct test_pki {
  temp_dir dir;
  self_signed_paths paths =
      ensure_self_signed(dir.path() / "tls", {"localhost", "127.0.0.1", "::1"});

  /// The default settings pointed at this certificate.
  tls_settings settings() const {
    tls_settings result;
    result.cert_file = paths.cert;
    result.key_file = paths.key;
    return result;
  }
};

struct client_ctx_deleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using client_ctx_ptr = std::unique_ptr<SSL_CTX, client_ctx_deleter>;

struct ssl_session_deleter {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using ssl_session_ptr = std::unique_ptr<SSL_SESSION, ssl_session_deleter>;

/// What a test client offers; empty strings keep OpenSSL's defaults.
struct client_options {
  int max_version = 0;
  std::string ciphers;
  std::string groups;
  uint64_t options = 0;
  std::filesystem::path ca_file;  ///< verify the server against it when set

  client_options& up_to(int version) {
    max_version = version;
    return *this;
  }
  client_options& offering(std::string cipher_list) {
    ciphers = std::move(cipher_list);
    return *this;
  }
  client_options& with_groups(std::string group_list) {
    groups = std::move(group_list);
    return *this;
  }
  client_options& with_options(uint64_t ssl_options) {
    options = ssl_options;
    return *this;
  }
  client_options& verifying_with(std::filesystem::path ca) {
    ca_file = std::move(ca);
    return *this;
  }
};

/// Shorthand for the common TLS 1.2 client.
inline client_options tls12_client() { return client_options{}.up_to(TLS1_2_VERSION); }

inline client_ctx_ptr make_client_context(const client_options& opts) {
  client_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  if (!ctx) {
    throw std::runtime_error("SSL_CTX_new failed");
  }
  bool ok = SSL_CTX_set_max_proto_version(ctx.get(), opts.max_version) == 1;
  if (!opts.ciphers.empty()) {
    ok = ok && SSL_CTX_set_cipher_list(ctx.get(), opts.ciphers.c_str()) == 1;
  }
  if (!opts.groups.empty()) {
    ok = ok && SSL_CTX_set1_groups_list(ctx.get(), opts.groups.c_str()) == 1;
  }
  if (!opts.ca_file.empty()) {
    ok = ok && SSL_CTX_load_verify_locations(ctx.get(), opts.ca_file.c_str(), nullptr) == 1;
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  SSL_CTX_set_options(ctx.get(), opts.options);
  if (!ok) {
    throw std::runtime_error("bad client options");
  }
  return ctx;
}

/// The client end of a connection over memory BIOs, driven step by step by the test.
class tls_client {
 public:
  explicit tls_client(SSL_CTX* ctx) : ssl_{SSL_new(ctx)} {
    SSL_set_bio(ssl_.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(ssl_.get());
  }

  SSL* ssl() const { return ssl_.get(); }
  bool established() const { return SSL_is_init_finished(ssl_.get()) == 1; }
  bool failed() const { return failed_; }
  bool peer_closed() const { return peer_closed_; }

  /// Everything decrypted from the server so far.
  std::string received;

  /// Advances the handshake, then reads whatever the server sent (session tickets too).
  void step() {
    if (failed_) {
      return;
    }
    if (!established()) {
      const int rc = SSL_do_handshake(ssl_.get());
      if (rc != 1 && SSL_get_error(ssl_.get(), rc) != SSL_ERROR_WANT_READ) {
        failed_ = true;
      }
    }
    while (established() && !peer_closed_) {
      char buf[4096];
      size_t n = 0;
      const int rc = SSL_read_ex(ssl_.get(), buf, sizeof(buf), &n);
      if (rc == 1) {
        received.append(buf, n);
        continue;
      }
      const int err = SSL_get_error(ssl_.get(), rc);
      peer_closed_ = err == SSL_ERROR_ZERO_RETURN;
      failed_ = err != SSL_ERROR_ZERO_RETURN && err != SSL_ERROR_WANT_READ;
      break;
    }
    ERR_clear_error();
  }

  void feed(std::string_view bytes) {
    BIO_write(SSL_get_rbio(ssl_.get()), bytes.data(), static_cast<int>(bytes.size()));
  }

  void write(std::string_view plain) {
    size_t written = 0;
    if (SSL_write_ex(ssl_.get(), plain.data(), plain.size(), &written) != 1) {
      throw std::runtime_error("client SSL_write failed");
    }
  }

  /// Ciphertext the client wants sent to the server.
  std::string take_output() {
    BIO* wbio = SSL_get_wbio(ssl_.get());
    std::string out(BIO_ctrl_pending(wbio), '\0');
    if (!out.empty()) {
      BIO_read(wbio, out.data(), static_cast<int>(out.size()));
    }
    return out;
  }

 private:
  struct ssl_deleter {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  std::unique_ptr<SSL, ssl_deleter> ssl_;
  bool failed_ = false;
  bool peer_closed_ = false;
};

/// Moves bytes both ways until neither side has anything to send. Bytes for the server go
/// in `server_chunk` bytes at a time (0: all at once); its plaintext lands in `server_plain`.
inline void pump(tls_client& client, tls_session& server, std::string& server_plain,
                 size_t server_chunk = 0) {
  for (int round = 0; round < 64; ++round) {
    client.step();
    std::string to_server = client.take_output();
    std::string to_client;
    std::string_view rest = to_server;
    while (!rest.empty()) {
      const size_t n = server_chunk == 0 ? rest.size() : std::min(server_chunk, rest.size());
      server.receive(rest.substr(0, n), server_plain, to_client);
      rest.remove_prefix(n);
    }
    client.feed(to_client);
    if (to_server.empty() && to_client.empty()) {
      return;
    }
  }
  throw std::runtime_error("pump: no quiescence after 64 rounds");
}

/// Decodes the hex strings in docs and case files.
inline std::string from_hex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string{hex.substr(i, 2)}, nullptr, 16)));
  }
  return bytes;
}

}  // namespace locomov::net::test
