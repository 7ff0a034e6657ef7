#pragma once

#include <map>
#include <string>

namespace locomov::test {

/// A response of the daemon's plain-HTTP status endpoint.
struct http_response {
  int status = 0;
  std::string body;
};

/// GET `path` from 127.0.0.1:`port` over plain HTTP/1.0 (the server closes
/// after answering); throws when nothing comes back within 10 s.
http_response http_get(int port, const std::string& path);

/// Every series of the daemon's /metrics, `name{labels}` to value; throws
/// unless the scrape answers 200.
std::map<std::string, double> scrape_metrics(int port);

/// How far `key` moved from `before` to `after` (a missing series is 0).
double moved(const std::map<std::string, double>& before,
             const std::map<std::string, double>& after, const std::string& key);

}  // namespace locomov::test
