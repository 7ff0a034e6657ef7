// locomov_tls_floor: the smallest server that speaks the packet port's
// protocol, to measure what TLS alone costs on this machine. It is the
// "minimal C server" of issue 2's reference figures: OpenSSL over
// non-blocking sockets, a few epoll threads, no storage, no actors. Each
// JSON object a client sends is answered `Thank you.\n` as soon as its
// closing brace arrives. Its CPU per connection, measured with
// locomov_loadgen --server-pid, is the floor under locomov's.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

struct options {
  int port = 38996;
  std::string cert;
  std::string key;
  std::string cipher = "AES256-SHA";
  int threads = 2;
};

struct ssl_deleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

/// One client: its socket, its TLS session and where its current JSON
/// object stands. Braces are counted without regard to strings, which
/// holds for the load generator's packets and is all a floor needs.
struct client {
  int fd = -1;
  std::unique_ptr<SSL, ssl_deleter> ssl;
  int depth = 0;
  std::string out;
};

void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

int listen_on(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail("socket");
  }
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 4096) != 0) {
    fail("bind/listen");
  }
  return fd;
}

/// Writes what is pending; false once the connection is done with.
bool flush(client& c) {
  while (!c.out.empty()) {
    const int n = SSL_write(c.ssl.get(), c.out.data(), static_cast<int>(c.out.size()));
    if (n <= 0) {
      return SSL_get_error(c.ssl.get(), n) == SSL_ERROR_WANT_WRITE;
    }
    c.out.erase(0, static_cast<std::size_t>(n));
  }
  return true;
}

/// Reads and answers what arrived; false once the connection is done with.
bool serve(client& c) {
  char buf[16384];
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(c.ssl.get(), buf, sizeof buf);
    if (n <= 0) {
      const int err = SSL_get_error(c.ssl.get(), n);
      return (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && flush(c);
    }
    for (int i = 0; i < n; ++i) {
      if (buf[i] == '{') {
        ++c.depth;
      } else if (buf[i] == '}' && c.depth > 0 && --c.depth == 0) {
        c.out += "Thank you.\n";
      }
    }
    if (!flush(c)) {
      return false;
    }
  }
}

void run_loop(SSL_CTX* ctx, int listener) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  // Every thread waits on the one listening socket; EPOLLEXCLUSIVE wakes
  // one of them per connection rather than all.
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::vector<epoll_event> events(256);
  for (;;) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<client*>(events[static_cast<std::size_t>(i)].data.ptr);
      if (c == nullptr) {
        for (;;) {
          const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            break;
          }
          int on = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          auto* fresh = new client;
          fresh->fd = fd;
          fresh->ssl.reset(SSL_new(ctx));
          SSL_set_fd(fresh->ssl.get(), fd);
          SSL_set_accept_state(fresh->ssl.get());
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.ptr = fresh;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      if (!serve(*c)) {
        ::close(c->fd);  // also leaves the epoll set
        delete c;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"Minimal TLS server answering the packet protocol, storing nothing: the TLS floor"};
  app.add_option("--port", o.port, "Port on 127.0.0.1");
  app.add_option("--cert", o.cert, "Certificate chain (PEM)")->required();
  app.add_option("--key", o.key, "Private key (PEM)")->required();
  app.add_option("--cipher", o.cipher, "TLS 1.2 cipher list");
  app.add_option("--threads", o.threads, "epoll threads")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_set_cipher_list(ctx, o.cipher.c_str()) != 1) {
    std::cerr << "locomov_tls_floor: cannot load the certificate, key or cipher list\n";
    return 1;
  }
  int listener = -1;
  try {
    listener = listen_on(o.port);
  } catch (const std::exception& e) {
    std::cerr << "locomov_tls_floor: " << e.what() << "\n";
    return 1;
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < o.threads; ++i) {
    threads.emplace_back(run_loop, ctx, listener);
  }
  std::cout << "locomov_tls_floor: listening on 127.0.0.1:" << o.port << std::endl;
  for (auto& t : threads) {
    t.join();
  }
}
