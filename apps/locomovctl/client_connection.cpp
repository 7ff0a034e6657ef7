#include "apps/locomovctl/client_connection.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace locomov::ctl {

namespace {

using steady = std::chrono::steady_clock;

std::string openssl_reason() {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) {
    return "no reason given by OpenSSL";
  }
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

void ssl_ctx_deleter::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

void ssl_deleter::operator()(SSL* ssl) const { SSL_free(ssl); }

int tls_version_from_string(std::string_view version) {
  if (version == "1.0") {
    return TLS1_VERSION;
  }
  if (version == "1.1") {
    return TLS1_1_VERSION;
  }
  if (version == "1.2") {
    return TLS1_2_VERSION;
  }
  if (version == "1.3") {
    return TLS1_3_VERSION;
  }
  return 0;
}

ssl_ctx_ptr make_client_context(const client_tls_settings& settings) {
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  if (!ctx) {
    throw std::invalid_argument("cannot create a TLS context: " + openssl_reason());
  }

  const int min = tls_version_from_string(settings.min_version);
  const int max = tls_version_from_string(settings.max_version);
  if (min == 0 || max == 0 || min > max) {
    throw std::invalid_argument("TLS versions must be 1.0 to 1.3 with --tls-min <= --tls-max");
  }
  if (SSL_CTX_set_min_proto_version(ctx.get(), min) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), max) != 1) {
    throw std::invalid_argument("TLS version range refused: " + openssl_reason());
  }
  if (!settings.ciphers.empty() &&
      SSL_CTX_set_cipher_list(ctx.get(), settings.ciphers.c_str()) != 1) {
    throw std::invalid_argument("--cipher '" + settings.ciphers +
                                "' names no usable suite: " + openssl_reason());
  }

  // Servers that close right after their last reply without close_notify are
  // common among embedded peers; treat that as an ordinary end of stream.
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);

  if (settings.insecure) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), settings.ca_file.c_str(), nullptr) != 1) {
    throw std::invalid_argument("cannot load CA file '" + settings.ca_file +
                                "': " + openssl_reason());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

connection_error::connection_error(std::string kind, const std::string& detail)
    : std::runtime_error(detail.empty() ? kind : kind + ": " + detail), kind_(std::move(kind)) {}

client_connection::client_connection(const std::string& host, std::uint16_t port, SSL_CTX* ctx,
                                     const std::string& verify_name,
                                     std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  const auto deadline = steady::now() + timeout_;
  try {
    connect_socket(host, port, deadline);
    if (ctx != nullptr) {
      handshake(ctx, verify_name, deadline);
    }
  } catch (...) {
    ssl_.reset();
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    throw;
  }
}

client_connection::~client_connection() { close(); }

void client_connection::connect_socket(const std::string& host, std::uint16_t port,
                                       time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw connection_error("connect failed", "cannot resolve " + host + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses{found, &freeaddrinfo};

  std::string last_error = "no address";
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd_ < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    // The default packet port lies in Linux's ephemeral range; our socket in
    // TIME_WAIT may hold it as its local port, and must not then stop a
    // restarted server from binding it.
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = ::connect(fd_, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      wait_for(POLLOUT, deadline, "connect");
      int so_error = 0;
      socklen_t len = sizeof so_error;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so_error, &len);
      errno = so_error;
      rc = so_error == 0 ? 0 : -1;
    }
    if (rc == 0) {
      // Packets are small and each waits for its reply; Nagle would only add delay.
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return;
    }
    last_error = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
  }
  throw connection_error("connect failed", last_error);
}

void client_connection::handshake(SSL_CTX* ctx, const std::string& verify_name,
                                  time_point deadline) {
  ERR_clear_error();
  ssl_.reset(SSL_new(ctx));
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd_) != 1) {
    throw connection_error("handshake failed", openssl_reason());
  }

  if (is_ip_literal(verify_name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), verify_name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_.get(), verify_name.c_str());
    SSL_set1_host(ssl_.get(), verify_name.c_str());
  }

  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_connect(ssl_.get());
    if (rc == 1) {
      return;
    }
    const int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ) {
      wait_for(POLLIN, deadline, "TLS handshake");
    } else if (err == SSL_ERROR_WANT_WRITE) {
      wait_for(POLLOUT, deadline, "TLS handshake");
    } else {
      const long verify = SSL_get_verify_result(ssl_.get());
      if (verify != X509_V_OK) {
        ERR_clear_error();
        throw connection_error("handshake failed",
                               std::string("certificate: ") +
                                   X509_verify_cert_error_string(verify));
      }
      if (ERR_peek_error() == 0) {
        throw connection_error("handshake failed", err == SSL_ERROR_SYSCALL && errno != 0
                                                       ? std::strerror(errno)
                                                       : "server closed the connection");
      }
      throw connection_error("handshake failed", openssl_reason());
    }
  }
}

void client_connection::wait_for(short events, time_point deadline, const char* waiting_for) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0) {
      throw connection_error("timeout", std::string("waiting for ") + waiting_for);
    }
    pollfd p{fd_, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc > 0) {
      return;  // readiness or an error; the next call on the socket reports which
    }
    if (rc < 0 && errno != EINTR) {
      throw connection_error("poll failed", std::strerror(errno));
    }
  }
}

void client_connection::write_all(std::string_view data) {
  const auto deadline = steady::now() + timeout_;
  while (!data.empty()) {
    if (!ssl_) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(POLLOUT, deadline, "the socket to take the packet");
      } else if (errno != EINTR) {
        throw connection_error("write failed", std::strerror(errno));
      }
      continue;
    }

    ERR_clear_error();
    std::size_t written = 0;
    const int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &written);
    if (rc == 1) {
      data.remove_prefix(written);
      continue;
    }
    const int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_WRITE) {
      wait_for(POLLOUT, deadline, "the socket to take the packet");
    } else if (err == SSL_ERROR_WANT_READ) {
      wait_for(POLLIN, deadline, "the socket to take the packet");
    } else if (err == SSL_ERROR_SYSCALL) {
      throw connection_error("write failed", std::strerror(errno));
    } else {
      throw connection_error("write failed", openssl_reason());
    }
  }
}

long client_connection::read_some() {
  if (eof_) {
    return 0;
  }
  char buf[4096];
  if (!ssl_) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      return n;
    }
    if (n == 0) {
      eof_ = true;
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return -1;
    }
    throw connection_error("read failed", std::strerror(errno));
  }

  ERR_clear_error();
  std::size_t got = 0;
  const int rc = SSL_read_ex(ssl_.get(), buf, sizeof buf, &got);
  if (rc == 1) {
    in_.append(buf, got);
    return static_cast<long>(got);
  }
  const int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return -1;
  }
  if (err == SSL_ERROR_ZERO_RETURN) {
    eof_ = true;
    return 0;
  }
  if (err == SSL_ERROR_SYSCALL) {
    throw connection_error("read failed", std::strerror(errno));
  }
  throw connection_error("read failed", openssl_reason());
}

bool client_connection::take_line(std::string& line) {
  const auto end = in_.find('\n');
  if (end == std::string::npos) {
    return false;
  }
  line.assign(in_, 0, end);
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  in_.erase(0, end + 1);
  return true;
}

bool client_connection::read_line(std::string& line) {
  const auto deadline = steady::now() + timeout_;
  while (!take_line(line)) {
    const long n = read_some();
    if (n == 0) {
      return false;
    }
    if (n < 0) {
      wait_for(POLLIN, deadline, "a reply");
    }
  }
  return true;
}

bool client_connection::try_read_line(std::string& line) {
  while (!take_line(line)) {
    if (read_some() <= 0) {
      return false;
    }
  }
  return true;
}

bool client_connection::read_available(std::string& out, std::chrono::milliseconds wait) {
  const auto deadline = steady::now() + wait;
  for (;;) {
    const long n = read_some();
    if (n > 0) {
      continue;
    }
    if (!in_.empty()) {
      out += in_;
      in_.clear();
      return true;
    }
    if (n == 0) {
      return false;
    }
    if (steady::now() >= deadline) {
      return true;
    }
    pollfd p{fd_, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
  }
}

void client_connection::shutdown_write() {
  if (ssl_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
  } else if (fd_ >= 0) {
    ::shutdown(fd_, SHUT_WR);
  }
}

void client_connection::close() {
  if (ssl_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
    ssl_.reset();
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

std::string client_connection::description() const {
  if (!ssl_) {
    return "plain TCP";
  }
  return std::string(SSL_get_version(ssl_.get())) + " " + SSL_get_cipher_name(ssl_.get());
}

}  // namespace locomov::ctl
