#include "tests/e2e/tls_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace locomov::test {
namespace {

// SSL_write goes through write(): a server that closed must fail the test
// that wrote, not kill the whole test binary with SIGPIPE.
const bool sigpipe_ignored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string fingerprint(const X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), digest, &size) != 1) {
    return {};
  }
  std::string text;
  char pair[4];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(pair, sizeof(pair), i == 0 ? "%02X" : ":%02X", digest[i]);
    text += pair;
  }
  return text;
}

}  // namespace

std::string certificate_file_fingerprint(const std::filesystem::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file{std::fopen(path.c_str(), "r"), &std::fclose};
  if (!file) {
    throw std::runtime_error("cannot open " + path.string());
  }
  std::unique_ptr<X509, void (*)(X509*)> cert{
      PEM_read_X509(file.get(), nullptr, nullptr, nullptr), &X509_free};
  if (!cert) {
    throw std::runtime_error("no certificate in " + path.string());
  }
  return fingerprint(cert.get());
}

tls_client::tls_client(const options& opts) {
  // A constructor that throws runs no destructor: a failed handshake (while
  // a test restarts the daemon, thousands of them) must not leak its SSL.
  try {
    open(opts);
  } catch (...) {
    release();
    throw;
  }
}

void tls_client::open(const options& opts) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!opts.source.empty()) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, opts.source.c_str(), &from.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
      throw std::runtime_error("cannot bind client address " + opts.source);
    }
  }
  // A server that accepts but never answers must fail the test, not hang it.
  const timeval handshake_limit{20, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &handshake_limit, sizeof(handshake_limit));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(opts.port));
  inet_pton(AF_INET, opts.host.c_str(), &addr.sin_addr);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("connect to " + opts.host + ":" + std::to_string(opts.port) +
                             " failed");
  }
  if (opts.ca.empty()) {
    return;
  }
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx_, opts.ca.c_str(), nullptr) != 1) {
    throw std::runtime_error("cannot load CA " + opts.ca.string());
  }
  if (opts.tls12_only) {
    SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
  }
  if (!opts.cipher.empty()) {
    SSL_CTX_set_cipher_list(ctx_, opts.cipher.c_str());
  }
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  SSL_set1_host(ssl_, opts.host.c_str());
  if (SSL_connect(ssl_) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    throw std::runtime_error(std::string("TLS handshake failed: ") + buf);
  }
  // From here on a read must never block past its limit: a TLS 1.3 session
  // ticket makes the socket readable without giving any application data.
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

tls_client::~tls_client() { release(); }

void tls_client::release() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
    ctx_ = nullptr;
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void tls_client::write(const std::string& bytes) {
  if (ssl_ != nullptr) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const int n = SSL_write(ssl_, bytes.data() + done, static_cast<int>(bytes.size() - done));
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      const int err = SSL_get_error(ssl_, n);
      if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
        throw std::runtime_error("TLS write failed");
      }
      pollfd p{fd_, static_cast<short>(err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
      poll(&p, 1, 1000);
    }
    return;
  }
  if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    throw std::runtime_error("write failed");
  }
}

bool tls_client::fill(std::chrono::milliseconds limit) {
  if (eof_) {
    return false;
  }
  if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
      return false;
    }
  }
  char buf[4096];
  const int n = ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof(buf))
                                : static_cast<int>(::recv(fd_, buf, sizeof(buf), 0));
  if (n <= 0) {
    // Readable yet nothing to give: a session ticket or a partial record.
    const bool again = ssl_ != nullptr ? SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ
                                       : n < 0 && errno == EAGAIN;
    if (again) {
      return true;
    }
    eof_ = true;
    return false;
  }
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> tls_client::read_line(std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      auto line = buffer_.substr(0, nl + 1);
      buffer_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !fill(left)) {
      return std::nullopt;
    }
  }
}

bool tls_client::closed_by_server(std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!eof_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    fill(left);
  }
  return true;
}

std::string tls_client::negotiated_cipher() const {
  return ssl_ != nullptr ? SSL_get_cipher_name(ssl_) : "";
}

std::string tls_client::peer_fingerprint() const {
  if (ssl_ == nullptr) {
    return {};
  }
  std::unique_ptr<X509, void (*)(X509*)> cert{SSL_get1_peer_certificate(ssl_), &X509_free};
  return fingerprint(cert.get());
}

}  // namespace locomov::test
