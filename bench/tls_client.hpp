// The load generator's TLS client side, over one of two libraries: OpenSSL,
// or mbedTLS, the kind of stack an embedded device runs.
//
// The load generator shares the machine's cores with the server it measures,
// so what its own handshakes cost is taken from the server. OpenSSL 3's
// client spends about 0.33-0.37 ms of CPU on each full handshake here, most
// of it decoding the server's certificate and allocating; mbedTLS about
// half of that (bench/README.md, "The load generator's TLS library").
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace locomov::bench {

enum class tls_library { openssl, mbedtls };

/// What a non-blocking TLS call did.
enum class tls_io {
  ok,          // done (for read and write: some bytes moved)
  want_read,   // call again once the socket is readable
  want_write,  // call again once the socket is writable
  closed,      // the server sent close_notify
  failed,      // see tls_session::error()
};

struct tls_client_options {
  tls_library library = tls_library::openssl;
  std::string cipher;   // OpenSSL syntax for either library
  std::string tls_max;  // "1.2" or "1.3"
  std::string ca_file;  // empty with insecure
  bool insecure = false;
  std::string verify_name;  // SNI and the name the certificate must hold
  bool session_resume = false;
};

/// One TLS connection over a connected non-blocking socket it does not own.
class tls_session {
 public:
  virtual ~tls_session() = default;

  virtual tls_io handshake() = 0;
  /// Writes from `data`; `written` is what was taken, possibly less than
  /// `size`. After want_*, call again with the same bytes.
  virtual tls_io write(const char* data, std::size_t size, std::size_t& written) = 0;
  virtual tls_io read(char* buf, std::size_t size, std::size_t& got) = 0;
  /// Sends close_notify without waiting for the server's, as a device hangs up.
  virtual void close_notify() = 0;
  /// Why the last call returned failed: the library's reason or errno's.
  virtual std::string error() const = 0;

  virtual bool resumed() const = 0;
  /// "TLSv1.2 AES256-SHA": version and suite, in the library's naming.
  virtual std::string negotiated() const = 0;
  /// Keeps this session for the next handshake in the same slot (--session-resume).
  virtual void keep_for_resume() = 0;
};

/// The TLS configuration of one load generator thread; not thread-safe.
class tls_client {
 public:
  virtual ~tls_client() = default;

  /// A session for `fd`; `slot` (below the client's slot count) names the
  /// connection whose resumed session it may use.
  virtual std::unique_ptr<tls_session> open(int fd, std::size_t slot) = 0;
};

/// Builds one thread's client with `slots` connections; throws
/// std::invalid_argument saying what to fix in the options.
std::unique_ptr<tls_client> make_tls_client(const tls_client_options& options, std::size_t slots);

}  // namespace locomov::bench
