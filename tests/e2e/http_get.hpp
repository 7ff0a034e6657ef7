#pragma once

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

}  // namespace locomov::test
