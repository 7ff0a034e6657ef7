#include "tests/e2e/http_get.hpp"

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

}  // namespace locomov::test
