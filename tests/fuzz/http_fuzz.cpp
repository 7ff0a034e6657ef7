// The app's path on the confirmation port: HTTP requests read off a stream
// and routed to a query or to a ready response.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/http_query.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using locomov::fuzz::check;

bool is_http_response(const std::string& r) {
  return r.rfind("HTTP/1.1 ", 0) == 0 && r.find("\r\n\r\n") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  locomov::protocol::looks_like_http(
      locomov::fuzz::payload(data, size));

  locomov::protocol::http_reader reader;
  std::vector<locomov::protocol::http_request> requests;
  locomov::fuzz::feed_in_reads(data, size, [&](std::string_view bytes) {
    if (!reader.failed()) {
      reader.feed(bytes, requests);
    }
  });
  for (const auto& r : requests) {
    if (r.query) {
      check(r.response.empty(), "a query is answered from the database, not beforehand");
      check(!r.query->device_name.empty() && !r.query->ssid.empty(),
            "a query names a device and an ssid");
    } else {
      check(is_http_response(r.response), "every other request gets a whole HTTP response");
    }
  }
  if (reader.failed()) {
    check(!requests.empty() && !requests.back().keep_alive,
          "a refused stream ends with a response that closes the connection");
    check(locomov::fuzz::is_one_printable_line(reader.error()), "the error is one log line");
  }
  return 0;
}
