#include "net/tls_session.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <vector>

#include "net/openssl_error.hpp"
#include "net/tls_context.hpp"

namespace locomov::net {

namespace {

/// Content type of a TLS handshake record; every ClientHello starts with it.
constexpr unsigned char handshake_record = 0x16;

/// Largest plaintext a single TLS record can carry.
constexpr size_t read_chunk = 16 * 1024;

struct bio_deleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

/// Reads the outcome of the OpenSSL call that returned `rc` from the calling thread's error
/// queue, leaving the queue empty. Returns SSL_ERROR_NONE on success.
int take_result(SSL* ssl, int rc, std::string& reason) {
  const int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, rc);
  if (err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL) {
    reason = detail::take_openssl_error("TLS I/O error");
  } else {
    ERR_clear_error();
  }
  return err;
}

std::string hex16(unsigned id) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) {
    out.push_back(digits[(id >> shift) & 0xf]);
  }
  return out;
}

/// "OPENSSL-NAME/IANA_NAME", or the one name where both agree (TLS 1.3).
std::string cipher_name(const SSL_CIPHER* c) {
  const std::string name = SSL_CIPHER_get_name(c);
  const char* iana = SSL_CIPHER_standard_name(c);
  return iana == nullptr || name == iana ? name : name + "/" + iana;
}

std::string group_name(SSL* ssl, int id) {
  const char* name = SSL_group_to_name(ssl, id);
  return name != nullptr ? name : hex16(static_cast<unsigned>(id));
}

/// The diagnosis of a handshake that found nothing in common; see offer().
std::string describe_offer(SSL* ssl) {
  std::string out = "offered_ciphers=";
  const unsigned char* raw = nullptr;
  const std::size_t len = SSL_get0_raw_cipherlist(ssl, &raw);
  for (std::size_t i = 0; raw != nullptr && i + 1 < len; i += 2) {
    const SSL_CIPHER* c = SSL_CIPHER_find(ssl, raw + i);
    out += (i == 0 ? "" : ",") +
           (c != nullptr ? cipher_name(c) : hex16(static_cast<unsigned>(raw[i] << 8 | raw[i + 1])));
  }

  out += " offered_groups=";
  const int n = SSL_get1_groups(ssl, nullptr);
  if (n <= 0) {
    out += "none";
  } else {
    std::vector<int> groups(static_cast<std::size_t>(n));
    SSL_get1_groups(ssl, groups.data());
    for (int i = 0; i < n; ++i) {
      out += (i == 0 ? "" : ",") + group_name(ssl, groups[static_cast<std::size_t>(i)]);
    }
  }

  out += " allowed_ciphers=";
  const STACK_OF(SSL_CIPHER)* allowed = SSL_get_ciphers(ssl);
  for (int i = 0; i < sk_SSL_CIPHER_num(allowed); ++i) {
    out += (i == 0 ? "" : ",") + cipher_name(sk_SSL_CIPHER_value(allowed, i));
  }
  out += " allowed_groups=" + configured_groups(SSL_get_SSL_CTX(ssl));
  return out;
}

/// OpenSSL's reasons for a ClientHello with nothing in common with us.
bool nothing_in_common(const std::string& reason) {
  return reason.find("no shared cipher") != std::string::npos ||
         reason.find("no suitable") != std::string::npos ||
         reason.find("no shared group") != std::string::npos;
}

}  // namespace

void tls_session::ssl_deleter::operator()(SSL* ssl) const { SSL_free(ssl); }

tls_session::tls_session(SSL_CTX* ctx) {
  ERR_clear_error();
  ssl_.reset(SSL_new(ctx));
  bio_ptr rbio{BIO_new(BIO_s_mem())};
  bio_ptr wbio{BIO_new(BIO_s_mem())};
  if (!ssl_ || !rbio || !wbio) {
    throw std::runtime_error("TLS session: " + detail::take_openssl_error());
  }
  // SSL_free frees both BIOs from here on.
  SSL_set_bio(ssl_.get(), rbio.release(), wbio.release());
  SSL_set_accept_state(ssl_.get());
}

tls_session::~tls_session() = default;

tls_session::state tls_session::receive(std::string_view cipher, std::string& plain,
                                        std::string& out) {
  if (state_ == state::failed || state_ == state::closed || cipher.empty()) {
    return state_;
  }

  // OpenSSL would report plaintext JSON as "wrong version number" (and HTTP as "http
  // request"); a fixed wording lets the log and the counters say what really happened.
  if (!first_bytes_checked_) {
    first_bytes_checked_ = true;
    if (static_cast<unsigned char>(cipher.front()) != handshake_record) {
      fail("peer did not speak TLS");
      return state_;
    }
  }

  BIO* rbio = SSL_get_rbio(ssl_.get());
  while (!cipher.empty()) {
    const int chunk = static_cast<int>(std::min<size_t>(cipher.size(), INT_MAX));
    // A memory BIO grows as needed, so the write only fails when memory runs out.
    const int written = BIO_write(rbio, cipher.data(), chunk);
    if (written <= 0) {
      ERR_clear_error();
      fail("out of memory buffering TLS input");
      return state_;
    }
    cipher.remove_prefix(static_cast<size_t>(written));
  }

  if (state_ == state::handshaking) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_.get());
    std::string reason;
    const int err = take_result(ssl_.get(), rc, reason);
    drain(out);
    if (err == SSL_ERROR_NONE) {
      state_ = state::established;
    } else if (err == SSL_ERROR_ZERO_RETURN) {
      state_ = state::closed;
    } else if (err != SSL_ERROR_WANT_READ) {
      if (nothing_in_common(reason)) {
        offer_ = describe_offer(ssl_.get());
        ERR_clear_error();
      }
      fail(std::move(reason));
    }
  }

  // The client's first application data may share this read with its Finished message.
  if (state_ == state::established) {
    pump_read(plain, out);
  }
  return state_;
}

bool tls_session::mid_record() const {
  // SSL_has_pending also counts a partial record OpenSSL already took from
  // the BIO; the BIO holds what it has not read yet.
  return SSL_has_pending(ssl_.get()) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl_.get())) > 0;
}

void tls_session::pump_read(std::string& plain, std::string& out) {
  // A stack buffer, not plain.resize(): growing the string zero-fills all of
  // read_chunk on every read, most of which a small packet never uses.
  char chunk[read_chunk];
  for (;;) {
    size_t n = 0;
    ERR_clear_error();
    const int rc = SSL_read_ex(ssl_.get(), chunk, read_chunk, &n);
    std::string reason;
    const int err = take_result(ssl_.get(), rc, reason);
    plain.append(chunk, n);
    // Reading can produce output too: TLS 1.3 key update replies, or alerts.
    drain(out);
    if (err == SSL_ERROR_NONE) {
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      state_ = state::closed;
    } else if (err != SSL_ERROR_WANT_READ) {
      if (nothing_in_common(reason)) {
        offer_ = describe_offer(ssl_.get());
        ERR_clear_error();
      }
      fail(std::move(reason));
    }
    return;
  }
}

void tls_session::send(std::string_view plain, std::string& out) {
  if (state_ == state::handshaking) {
    throw std::logic_error("tls_session::send before the handshake completed");
  }
  if (state_ == state::failed) {
    return;
  }
  while (!plain.empty()) {
    size_t written = 0;
    ERR_clear_error();
    const int rc = SSL_write_ex(ssl_.get(), plain.data(), plain.size(), &written);
    std::string reason;
    const int err = take_result(ssl_.get(), rc, reason);
    drain(out);
    if (err != SSL_ERROR_NONE) {
      fail(std::move(reason));
      return;
    }
    plain.remove_prefix(written);
  }
}

void tls_session::shutdown(std::string& out) {
  if (state_ == state::failed) {
    return;
  }
  ERR_clear_error();
  // The result needs no handling: 0 only means the peer's close_notify is still to come,
  // and after a failure (say, during the handshake) there is nothing left but to hang up.
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
  drain(out);
}

std::string tls_session::version() const { return SSL_get_version(ssl_.get()); }

bool tls_session::resumed() const { return SSL_session_reused(ssl_.get()) == 1; }

std::string tls_session::cipher() const {
  const SSL_CIPHER* current = SSL_get_current_cipher(ssl_.get());
  return current == nullptr ? std::string{} : SSL_CIPHER_get_name(current);
}

void tls_session::drain(std::string& out) {
  BIO* wbio = SSL_get_wbio(ssl_.get());
  for (size_t pending = BIO_ctrl_pending(wbio); pending > 0; pending = BIO_ctrl_pending(wbio)) {
    const size_t old_size = out.size();
    const int chunk = static_cast<int>(std::min<size_t>(pending, INT_MAX));
    out.resize(old_size + static_cast<size_t>(chunk));
    const int n = BIO_read(wbio, out.data() + old_size, chunk);
    out.resize(old_size + static_cast<size_t>(n > 0 ? n : 0));
    if (n <= 0) {
      break;
    }
  }
}

void tls_session::fail(std::string reason) {
  state_ = state::failed;
  error_ = std::move(reason);
}

}  // namespace locomov::net
