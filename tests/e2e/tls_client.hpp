#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace locomov::test {

/// A blocking client for the packet port, over TLS (verifying the server
/// against `ca`) or in plaintext when `ca` is empty. Test use only.
class tls_client {
 public:
  struct options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::filesystem::path ca;  ///< empty: plaintext
    std::string cipher;        ///< TLS 1.2 cipher list; empty: OpenSSL's default
    bool tls12_only = false;
    std::string source;        ///< client address (any of 127.0.0.0/8); empty: the system's
  };

  /// Connects (and handshakes); throws std::runtime_error on failure, or
  /// when the handshake takes more than 20 s.
  explicit tls_client(const options& opts);
  ~tls_client();

  void write(const std::string& bytes);

  /// The next line including its '\n', or nothing when the server closed
  /// the connection or `limit` passed first.
  std::optional<std::string> read_line(std::chrono::milliseconds limit = std::chrono::seconds(10));

  /// True when the server closed the connection within `limit`.
  bool closed_by_server(std::chrono::milliseconds limit);

  std::string negotiated_cipher() const;

  /// SHA-256 fingerprint of the certificate the server presented, as
  /// `openssl x509 -noout -fingerprint -sha256` prints it; empty in plaintext.
  std::string peer_fingerprint() const;

 private:
  void open(const options& opts);
  void release();

  // Reads once into buffer_; false on EOF or error, nullopt-like timeout as false too.
  bool fill(std::chrono::milliseconds limit);

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
  bool eof_ = false;
};

/// SHA-256 fingerprint of the first certificate in the PEM file `path`, in
/// the format of tls_client::peer_fingerprint; throws if there is none.
std::string certificate_file_fingerprint(const std::filesystem::path& path);

}  // namespace locomov::test
