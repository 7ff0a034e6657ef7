#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace locomov::protocol {

/// The app's question on the confirmation port: the hash of the last confo
/// for a (device name, ssid) pair.
struct confo_query {
  std::string device_name;
  std::string ssid;
};

/// One HTTP request read off a connection, already routed: either a query to
/// answer from the database, or a response decided without it.
struct http_request {
  std::optional<confo_query> query;  ///< set for GET/HEAD /confo/{d}/{s} and /api/confo/{d}/{s}
  std::string response;              ///< complete response when `query` is not set
  bool head = false;                 ///< HEAD: the answer has headers only
  bool keep_alive = true;            ///< false: close once this request is answered
};

/// Reads HTTP/1.x requests from a byte stream with http-parser, one
/// connection's worth, tolerating any split of the stream. Not thread-safe.
class http_reader {
 public:
  http_reader();
  ~http_reader();
  http_reader(const http_reader&) = delete;
  http_reader& operator=(const http_reader&) = delete;

  /// Parses `bytes` and appends each completed request to `out`. After a
  /// malformed request, `out` ends with a 4xx response whose keep_alive is
  /// false, and the reader takes no more input (failed() is true).
  void feed(std::string_view bytes, std::vector<http_request>& out);

  bool failed() const { return failed_; }
  /// True while the bytes fed so far end inside a request.
  bool mid_request() const;
  /// Why the stream was refused, for the log; empty unless failed().
  const std::string& error() const { return error_; }

 private:
  struct parser;
  std::unique_ptr<parser> parser_;
  bool failed_ = false;
  std::string error_;
};

/// A complete text/plain response with `status` and `body` (headers only
/// for HEAD); `Connection: close` unless keep_alive.
std::string plain_response(int status, const std::string& body, bool head, bool keep_alive);

/// The complete response to a query: 200 with the hash as decimal text, or
/// 404 with the body `Not found`.
std::string query_response(std::optional<std::int32_t> hash, bool head, bool keep_alive);

/// True when the first bytes a client sent after the handshake look like an
/// HTTP request line (an upper-case method token) rather than JSON.
bool looks_like_http(std::string_view first_bytes);

}  // namespace locomov::protocol
