#pragma once

#include <memory>
#include <string>
#include <string_view>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace locomov::net {

/// The server side of one TLS connection over memory BIOs: ciphertext comes
/// in from whoever owns the socket, ciphertext to send goes out through the
/// caller's buffer. Owned by one connection actor; the actor may move
/// between threads, so every call clears and reads OpenSSL's per-thread
/// error queue itself.
class tls_session {
 public:
  enum class state {
    handshaking,
    established,
    closed,  ///< the peer sent close_notify
    failed,  ///< handshake or record error; see `error()`
  };

  explicit tls_session(SSL_CTX* ctx);
  ~tls_session();
  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;

  /// Feeds ciphertext received from the peer. Appends decrypted application
  /// data to `plain` and ciphertext that must be sent to the peer (handshake
  /// records, alerts, session tickets) to `out`. Returns the new state.
  state receive(std::string_view cipher, std::string& plain, std::string& out);

  /// Encrypts application data; appends the records to `out`.
  /// Only valid once established (or closed: the peer stopped sending, we may
  /// still answer); throws std::logic_error while handshaking, does nothing
  /// once failed.
  void send(std::string_view plain, std::string& out);

  /// Appends a close_notify alert to `out` (nothing once failed).
  void shutdown(std::string& out);

  state current() const { return state_; }

  /// True while received ciphertext ends inside a TLS record: the peer has
  /// stopped in the middle of something.
  bool mid_record() const;

  /// Why the session failed: OpenSSL's reason, or "peer did not speak TLS"
  /// when the first bytes are not a TLS record (for example plaintext JSON
  /// or HTTP on a TLS port).
  const std::string& error() const { return error_; }

  /// After a handshake that failed for want of a common cipher or group:
  /// what the client offered and what this server allows, as
  /// `offered_ciphers=... offered_groups=... allowed_ciphers=...
  /// allowed_groups=...` (ciphers as OpenSSL/IANA names, unknown ones in
  /// hex), so that one log line tells how to fix a fleet. Empty otherwise.
  const std::string& offer() const { return offer_; }

  /// Negotiated protocol ("TLSv1.2") and cipher ("AES256-SHA"), once established.
  std::string version() const;
  std::string cipher() const;
  /// True when the handshake resumed an earlier session (a ticket or the
  /// session cache), once established.
  bool resumed() const;

 private:
  struct ssl_deleter {
    void operator()(SSL* ssl) const;
  };

  void drain(std::string& out);
  void pump_read(std::string& plain, std::string& out);
  void fail(std::string reason);

  std::unique_ptr<SSL, ssl_deleter> ssl_;
  state state_ = state::handshaking;
  std::string error_;
  std::string offer_;
  bool first_bytes_checked_ = false;
};

}  // namespace locomov::net
