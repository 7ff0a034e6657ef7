// locomov_confo_load: how many confos per second the confo-arbiter decides
// when many devices post at once. Each device is a thread with one TLS
// connection to the confirmation port, posting confos for hashes never seen
// before (the costliest branch: a new pub, its subpub link and the confo)
// and waiting for each answer. Blocking I/O is enough here: the arbiter
// serializes decisions, so the server, not the client, sets the pace.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace {

using steady = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  int port = 38979;
  std::string ca;
  std::string servername = "localhost";
  int devices = 32;
  double duration_s = 10;
  std::int32_t first_hash = 500'000'000;
  std::string email = "bench@example.com";
  std::string db;
};

struct device_result {
  long ok = 0;
  long refused = 0;
  std::vector<double> latency_ms;
  std::string error;
};

int connect_tcp(const options& o) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void run_device(const options& o, SSL_CTX* ctx, int index, steady::time_point until,
                device_result& out) {
  const int fd = connect_tcp(o);
  if (fd < 0) {
    out.error = "connect failed";
    return;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, o.servername.c_str());
  SSL_set1_host(ssl, o.servername.c_str());
  if (SSL_connect(ssl) != 1) {
    out.error = "handshake failed";
  }
  // Hashes interleave across devices so every confo names a new one.
  std::int32_t hash = o.first_hash + index;
  std::string line;
  char buf[256];
  while (out.error.empty() && steady::now() < until) {
    const std::string confo =
        nlohmann::json{{"deviceName", "bench-" + std::to_string(index)},
                       {"ssid", "bench"},
                       {"hash", hash},
                       {"email", o.email},
                       {"timestamp", std::time(nullptr)}}
            .dump() +
        "\n";
    hash += o.devices;
    const auto start = steady::now();
    if (SSL_write(ssl, confo.data(), static_cast<int>(confo.size())) <= 0) {
      out.error = "write failed";
      break;
    }
    line.clear();
    while (line.find('\n') == std::string::npos) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) {
        out.error = "connection closed";
        break;
      }
      line.append(buf, static_cast<std::size_t>(n));
    }
    if (!out.error.empty()) {
      break;
    }
    out.latency_ms.push_back(
        std::chrono::duration<double, std::milli>(steady::now() - start).count());
    (line == "OK.\n" ? out.ok : out.refused) += 1;
  }
  SSL_free(ssl);
  close(fd);
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

long count_rows(const std::string& db, const options& o) {
  pqxx::connection conn{db};
  pqxx::work tx{conn};
  return tx.exec_params1("SELECT count(*) FROM pub WHERE hash >= $1", o.first_hash)[0]
      .as<long>();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locomov_confo_load: confos decided per second on the confirmation port"};
  options o;
  app.add_option("--host", o.host)->capture_default_str();
  app.add_option("--port", o.port)->capture_default_str();
  app.add_option("--ca", o.ca, "CA that signed the server certificate")->required();
  app.add_option("--servername", o.servername, "Name checked in the certificate")
      ->capture_default_str();
  app.add_option("--devices", o.devices, "Concurrent devices, one connection each")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--duration", o.duration_s, "Seconds to post for")->capture_default_str();
  app.add_option("--first-hash", o.first_hash, "First of the new hashes posted")
      ->capture_default_str();
  app.add_option("--email", o.email, "A registered sub's email (the new-pub branch)")
      ->capture_default_str();
  app.add_option("--db", o.db, "libpq connection string; count the pubs created");
  CLI11_PARSE(app, argc, argv);

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1) {
    std::cerr << "locomov_confo_load: cannot read CA " << o.ca << "\n";
    return 1;
  }
  const long rows_before = o.db.empty() ? 0 : count_rows(o.db, o);
  std::vector<device_result> results(static_cast<std::size_t>(o.devices));
  const auto start = steady::now();
  const auto until = start + std::chrono::duration_cast<steady::duration>(
                                 std::chrono::duration<double>(o.duration_s));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.devices; ++i) {
    threads.emplace_back(run_device, std::cref(o), ctx, i, until,
                         std::ref(results[static_cast<std::size_t>(i)]));
  }
  for (auto& t : threads) {
    t.join();
  }
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  SSL_CTX_free(ctx);

  long ok = 0;
  long refused = 0;
  int failed = 0;
  std::vector<double> latency;
  for (auto& r : results) {
    ok += r.ok;
    refused += r.refused;
    failed += r.error.empty() ? 0 : 1;
    latency.insert(latency.end(), r.latency_ms.begin(), r.latency_ms.end());
  }
  std::printf("devices                %d (%d failed)\n", o.devices, failed);
  std::printf("confos OK. / !OK       %ld / %ld in %.2f s\n", ok, refused, seconds);
  std::printf("decided/s              %.1f\n", static_cast<double>(ok) / seconds);
  std::printf("post-to-answer ms      p50 %.2f  p99 %.2f\n", percentile(latency, 0.50),
              percentile(latency, 0.99));
  if (!o.db.empty()) {
    std::printf("pubs created           %ld\n", count_rows(o.db, o) - rows_before);
  }
  return failed == 0 && refused == 0 ? 0 : 1;
}
