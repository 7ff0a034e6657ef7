#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace locomov::ctl {

struct ssl_ctx_deleter {
  void operator()(SSL_CTX* ctx) const;
};
struct ssl_deleter {
  void operator()(SSL* ssl) const;
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_deleter>;
using ssl_ptr = std::unique_ptr<SSL, ssl_deleter>;

/// How the client side of TLS is set up. Versions are "1.0" to "1.3".
struct client_tls_settings {
  std::string ca_file;  ///< PEM bundle the server certificate must chain to
  bool insecure = false;  ///< skip certificate verification (ca_file ignored)
  std::string min_version = "1.2";
  std::string max_version = "1.3";
  std::string ciphers;  ///< TLS 1.2 and older suites, OpenSSL syntax; empty: OpenSSL's default
};

/// Maps "1.2" to TLS1_2_VERSION and so on; returns 0 for anything else.
int tls_version_from_string(std::string_view version);

/// Builds a client context; one may be shared by every connection and
/// thread once built. Throws std::invalid_argument naming the setting that
/// OpenSSL refused, with its reason.
ssl_ctx_ptr make_client_context(const client_tls_settings& settings);

/// Why an exchange with the server stopped. `kind` is a short fixed phrase
/// ("connect failed", "handshake failed", "timeout", ...) that summaries
/// group by; `what()` adds the detail.
class connection_error : public std::runtime_error {
 public:
  connection_error(std::string kind, const std::string& detail);
  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
};

/// One blocking client connection to the packet port, plain TCP or TLS,
/// with every wait bounded by the timeout given at construction (per
/// operation, not in total). Used by one thread at a time. Writes to a
/// closed peer raise EPIPE; the process must ignore SIGPIPE.
class client_connection {
 public:
  /// Connects to host:port and, when `ctx` is not null, completes a TLS
  /// handshake. Unless the context skips verification, the certificate must
  /// match `verify_name`: checked as an IP address when it is an IP
  /// literal, else as a DNS name that is also sent as SNI. Throws
  /// connection_error.
  client_connection(const std::string& host, std::uint16_t port, SSL_CTX* ctx,
                    const std::string& verify_name, std::chrono::milliseconds timeout);
  ~client_connection();
  client_connection(const client_connection&) = delete;
  client_connection& operator=(const client_connection&) = delete;

  /// Sends all of `data`. Throws connection_error.
  void write_all(std::string_view data);

  /// Waits for the next line ending in '\n' and returns it without the
  /// line end. Returns false when the peer closed before a full line came.
  /// Throws connection_error on timeout or failure.
  bool read_line(std::string& line);

  /// Like read_line, but only takes what has already arrived: returns false
  /// at once when no full line is there yet.
  bool try_read_line(std::string& line);

  /// Appends to `out` what has arrived, waiting at most `wait` for the
  /// first byte. Returns false once the peer has closed and nothing more is
  /// buffered. Throws connection_error on failure (not on a mere wait).
  bool read_available(std::string& out, std::chrono::milliseconds wait);
  /// Ends the sending side: TLS close_notify, or a TCP half-close; replies
  /// can still be read.
  void shutdown_write();
  /// Sends close_notify without waiting for the peer's, then closes.
  void close();

  /// The TLS session, for what it says of the server (its chain); null on
  /// plain TCP.
  SSL* tls() const { return ssl_.get(); }
  /// "TLSv1.3 TLS_AES_256_GCM_SHA384", or "plain TCP".
  std::string description() const;

 private:
  using time_point = std::chrono::steady_clock::time_point;

  void connect_socket(const std::string& host, std::uint16_t port, time_point deadline);
  void handshake(SSL_CTX* ctx, const std::string& verify_name, time_point deadline);
  void wait_for(short events, time_point deadline, const char* waiting_for);
  /// Reads what is there into in_; returns bytes read, 0 on orderly close,
  /// -1 when nothing is available yet.
  long read_some();
  bool take_line(std::string& line);

  int fd_ = -1;
  ssl_ptr ssl_;
  std::string in_;
  bool eof_ = false;
  std::chrono::milliseconds timeout_;
};

}  // namespace locomov::ctl
