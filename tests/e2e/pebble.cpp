#include "tests/e2e/pebble.hpp"

#include <httplib.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "tests/support/pg_cluster.hpp"

namespace locomov::test {

using namespace std::chrono_literals;

pebble_ca::pebble_ca(const std::vector<std::string>& env, int tls_alpn_port) {
  acme_port_ = free_port();
  management_port_ = free_port();
  http01_port_ = free_port();
  tls_alpn_port_ = tls_alpn_port != 0 ? tls_alpn_port : free_port();
  dns_port_ = free_port();
  const auto cert = dir_.path() / "pebble.crt";
  const auto key = dir_.path() / "pebble.key";
  const auto made = run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                 "-days", "2", "-subj", "/CN=localhost", "-addext",
                                 "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
                                 key.string(), "-out", cert.string()});
  if (made.status != 0) {
    throw std::runtime_error("openssl req: " + made.output);
  }
  std::ofstream(dir_.path() / "pebble.json")
      << R"({"pebble":{"listenAddress":"127.0.0.1:)" << acme_port_
      << R"(","managementListenAddress":"127.0.0.1:)" << management_port_
      << R"(","certificate":")" << cert.string() << R"(","privateKey":")" << key.string()
      << R"(","httpPort":)" << http01_port_ << R"(,"tlsPort":)" << tls_alpn_port_
      << R"(,"ocspResponderURL":"","externalAccountBindingRequired":false}})";
  dns_ = std::make_unique<process>(
      std::vector<std::string>{"pebble-challtestsrv", "-defaultIPv4", "127.0.0.1",
                               "-defaultIPv6", "", "-dns01",
                               "127.0.0.1:" + std::to_string(dns_port_), "-http01", "",
                               "-https01", "", "-tlsalpn01", "", "-management",
                               "127.0.0.1:" + std::to_string(free_port())},
      dir_.path() / "challtestsrv.log");
  std::vector<std::string> argv{"env", "PEBBLE_VA_NOSLEEP=1"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {"pebble", "-config", (dir_.path() / "pebble.json").string(),
                           "-dnsserver", "127.0.0.1:" + std::to_string(dns_port_)});
  pebble_ = std::make_unique<process>(argv, dir_.path() / "pebble.log");
  for (int i = 0; i < 200 && pebble_->output().find("ACME directory available") ==
                                 std::string::npos;
       ++i) {
    std::this_thread::sleep_for(50ms);
  }
  if (pebble_->output().find("ACME directory available") == std::string::npos) {
    throw std::runtime_error("pebble did not start: " + pebble_->output());
  }
}

std::string pebble_ca::directory() const {
  return "https://127.0.0.1:" + std::to_string(acme_port_) + "/dir";
}

std::string pebble_ca::ca_file() const { return (dir_.path() / "pebble.crt").string(); }

std::string pebble_ca::root(int index) const {
  httplib::SSLClient cli("127.0.0.1", management_port_);
  cli.enable_server_certificate_verification(false);
  auto r = cli.Get("/roots/" + std::to_string(index));
  return r && r->status == 200 ? r->body : std::string();
}

}  // namespace locomov::test
