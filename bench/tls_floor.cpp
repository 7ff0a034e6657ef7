// locomov_tls_floor: the smallest server that speaks the packet port's
// protocol, to measure what TLS alone costs on this machine. It is the
// "minimal C server" of issue 2's reference figures: OpenSSL over
// non-blocking sockets, a few epoll threads, no storage, no actors. Each
// JSON object a client sends is answered `Thank you.\n` as soon as its
// closing brace arrives. Its CPU per connection, measured with
// locomov_loadgen --server-pid, is the floor under locomov's.
//
// With --hand-off it takes the shape issue 2 prescribes for locomov, still
// with nothing stored and no actors: one thread only moves bytes between
// the sockets and the connections, and worker threads run each
// connection's TLS over memory BIOs. The difference between the two modes
// is what handing every read and write between threads costs on this
// machine, before any of locomov's own work.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct options {
  int port = 38996;
  std::string cert;
  std::string key;
  std::string cipher = "AES256-SHA";
  int threads = 2;
  bool hand_off = false;
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

void fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

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
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4096) != 0) {
    fail("bind/listen");
  }
  return fd;
}

/// The next connection waiting on `listener`, non-blocking and with Nagle
/// off; -1 when none is waiting.
int accept_one(int listener) {
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
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

/// Counts the JSON objects that closed in `data` and owes a reply for each.
void count_objects(const char* data, int n, int& depth, std::string& replies) {
  for (int i = 0; i < n; ++i) {
    if (data[i] == '{') {
      ++depth;
    } else if (data[i] == '}' && depth > 0 && --depth == 0) {
      replies += "Thank you.\n";
    }
  }
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
    count_objects(buf, n, c.depth, c.out);
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
        for (int fd = accept_one(listener); fd >= 0; fd = accept_one(listener)) {
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

/// A connection in --hand-off mode. The byte thread owns the socket; a
/// worker owns the TLS session while `queued`; `mutex` guards the rest.
struct handed_client {
  int fd = -1;
  std::unique_ptr<SSL, ssl_deleter> ssl;
  BIO* network_in = nullptr;   // owned by ssl
  BIO* network_out = nullptr;  // owned by ssl
  int depth = 0;
  std::string unsent;  // byte thread only: what the socket did not take yet
  std::mutex mutex;
  std::string inbox;
  bool queued = false;
};
using handed_ptr = std::shared_ptr<handed_client>;

/// What a worker hands back to the byte thread.
struct outgoing {
  handed_ptr client;
  std::string bytes;
  bool close = false;
};

class hand_off_server {
 public:
  hand_off_server(SSL_CTX* ctx, int listener, int workers) : ctx_(ctx), listener_(listener) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    watch(listener_, EPOLLIN, nullptr);
    watch(wake_, EPOLLIN, &wake_);
    for (int i = 0; i < workers; ++i) {
      workers_.emplace_back([this] { work(); });
    }
  }

  void run() {
    std::vector<epoll_event> events(256);
    for (;;) {
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        const auto& ev = events[static_cast<std::size_t>(i)];
        if (ev.data.ptr == nullptr) {
          accept_all();
        } else if (ev.data.ptr == &wake_) {
          send_outgoing();
        } else {
          on_socket(static_cast<handed_client*>(ev.data.ptr)->fd, ev.events);
        }
      }
    }
  }

 private:
  void watch(int fd, std::uint32_t events, void* tag, int op = EPOLL_CTL_ADD) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    epoll_ctl(epoll_, op, fd, &ev);
  }

  void accept_all() {
    for (int fd = accept_one(listener_); fd >= 0; fd = accept_one(listener_)) {
      auto c = std::make_shared<handed_client>();
      c->fd = fd;
      c->ssl.reset(SSL_new(ctx_));
      c->network_in = BIO_new(BIO_s_mem());
      c->network_out = BIO_new(BIO_s_mem());
      SSL_set_bio(c->ssl.get(), c->network_in, c->network_out);
      SSL_set_accept_state(c->ssl.get());
      watch(fd, EPOLLIN | EPOLLRDHUP, c.get());
      clients_.emplace(fd, std::move(c));
    }
  }

  /// Reads what the socket holds and queues it for a worker.
  void on_socket(int fd, std::uint32_t events) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) {
      return;
    }
    auto c = it->second;
    if ((events & EPOLLOUT) != 0 && !write_out(*c)) {
      drop(fd);
      return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) {
      return;
    }
    std::string got;
    char buf[16384];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        got.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || errno != EAGAIN) {
        drop(fd);
        return;
      }
      break;
    }
    if (got.empty()) {
      return;
    }
    bool enqueue = false;
    {
      std::lock_guard<std::mutex> lock(c->mutex);
      c->inbox += got;
      enqueue = !c->queued;
      c->queued = true;
    }
    if (enqueue) {
      {
        std::lock_guard<std::mutex> lock(work_mutex_);
        work_.push_back(std::move(c));
      }
      work_cv_.notify_one();
    }
  }

  void drop(int fd) {
    ::close(fd);  // also leaves the epoll set
    clients_.erase(fd);
  }

  /// Writes what is unsent; false once the peer is gone.
  bool write_out(handed_client& c) {
    while (!c.unsent.empty()) {
      const ssize_t n = ::write(c.fd, c.unsent.data(), c.unsent.size());
      if (n < 0) {
        if (errno == EAGAIN) {
          watch(c.fd, EPOLLIN | EPOLLRDHUP | EPOLLOUT, &c, EPOLL_CTL_MOD);
          return true;
        }
        return false;
      }
      c.unsent.erase(0, static_cast<std::size_t>(n));
    }
    watch(c.fd, EPOLLIN | EPOLLRDHUP, &c, EPOLL_CTL_MOD);
    return true;
  }

  void send_outgoing() {
    std::uint64_t ignored = 0;
    (void)!::read(wake_, &ignored, sizeof ignored);
    std::vector<outgoing> batch;
    {
      std::lock_guard<std::mutex> lock(out_mutex_);
      batch.swap(outbox_);
    }
    for (auto& o : batch) {
      auto it = clients_.find(o.client->fd);
      if (it == clients_.end() || it->second != o.client) {
        continue;  // the peer left while a worker had it
      }
      o.client->unsent += o.bytes;
      if (!write_out(*o.client) || o.close) {
        drop(o.client->fd);
      }
    }
  }

  void work() {
    for (;;) {
      handed_ptr c;
      {
        std::unique_lock<std::mutex> lock(work_mutex_);
        work_cv_.wait(lock, [this] { return !work_.empty(); });
        c = std::move(work_.front());
        work_.pop_front();
      }
      handle(c);
    }
  }

  /// Runs the connection's TLS over everything queued for it.
  void handle(const handed_ptr& c) {
    std::string out;
    bool close = false;
    for (;;) {
      std::string in;
      {
        std::lock_guard<std::mutex> lock(c->mutex);
        if (c->inbox.empty() || close) {
          c->queued = false;
          break;
        }
        in.swap(c->inbox);
      }
      BIO_write(c->network_in, in.data(), static_cast<int>(in.size()));
      std::string replies;
      char buf[16384];
      for (;;) {
        ERR_clear_error();
        const int n = SSL_read(c->ssl.get(), buf, sizeof buf);
        if (n <= 0) {
          const int err = SSL_get_error(c->ssl.get(), n);
          close = err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE;
          break;
        }
        count_objects(buf, n, c->depth, replies);
      }
      if (!replies.empty()) {
        SSL_write(c->ssl.get(), replies.data(), static_cast<int>(replies.size()));
      }
      char* pending = nullptr;
      const long size = BIO_get_mem_data(c->network_out, &pending);
      out.append(pending, static_cast<std::size_t>(size));
      (void)BIO_reset(c->network_out);
    }
    if (out.empty() && !close) {
      return;
    }
    {
      std::lock_guard<std::mutex> lock(out_mutex_);
      outbox_.push_back(outgoing{c, std::move(out), close});
    }
    const std::uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }

  SSL_CTX* ctx_;
  int listener_;
  int epoll_ = -1;
  int wake_ = -1;
  std::unordered_map<int, handed_ptr> clients_;  // the byte thread's
  std::mutex work_mutex_;
  std::condition_variable work_cv_;
  std::deque<handed_ptr> work_;
  std::mutex out_mutex_;
  std::vector<outgoing> outbox_;
  std::vector<std::thread> workers_;
};

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"Minimal TLS server answering the packet protocol, storing nothing: the TLS floor"};
  app.add_option("--port", o.port, "Port on 127.0.0.1");
  app.add_option("--cert", o.cert, "Certificate chain (PEM)")->required();
  app.add_option("--key", o.key, "Private key (PEM)")->required();
  app.add_option("--cipher", o.cipher, "TLS 1.2 cipher list");
  app.add_option("--threads", o.threads, "epoll threads; with --hand-off, TLS workers")
      ->check(CLI::PositiveNumber);
  app.add_flag("--hand-off", o.hand_off,
               "One thread moves bytes, --threads workers run TLS (locomov's shape)");
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
  if (o.hand_off) {
    std::cout << "locomov_tls_floor: listening on 127.0.0.1:" << o.port << " (hand-off)"
              << std::endl;
    hand_off_server(ctx, listener, o.threads).run();
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
