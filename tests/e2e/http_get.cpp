#include "tests/e2e/http_get.hpp"

#include <sstream>
#include <stdexcept>

#include "tests/e2e/tls_client.hpp"

namespace locomov::test {

http_response http_get(int port, const std::string& path) {
  tls_client::options o;
  o.port = port;  // no CA: plaintext
  tls_client conn(o);
  conn.write("GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  std::string raw;
  while (auto line = conn.read_line()) {
    raw += *line;
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  const auto header_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12 || header_end == std::string::npos) {
    throw std::runtime_error("no HTTP response to GET " + path + ": " + raw);
  }
  return {std::stoi(raw.substr(9, 3)), raw.substr(header_end + 4)};
}

std::map<std::string, double> scrape_metrics(int port) {
  const auto r = http_get(port, "/metrics");
  if (r.status != 200) {
    throw std::runtime_error("GET /metrics answered " + std::to_string(r.status));
  }
  std::map<std::string, double> series;
  std::istringstream lines(r.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto space = line.rfind(' ');
    series[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return series;
}

double moved(const std::map<std::string, double>& before,
             const std::map<std::string, double>& after, const std::string& key) {
  const auto b = before.find(key);
  const auto a = after.find(key);
  return (a == after.end() ? 0 : a->second) - (b == before.end() ? 0 : b->second);
}

}  // namespace locomov::test
