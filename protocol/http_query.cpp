#include "protocol/http_query.hpp"

#include <http_parser.h>

#include <cctype>

namespace locomov::protocol {
namespace {

/// Longer request targets are refused with 414: a device name and an SSID
/// (32 bytes) percent-encoded fit many times over.
constexpr std::size_t max_url = 8 * 1024;

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string response(int status, const std::string& body, bool head, bool keep_alive,
                     const char* extra_headers = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += extra_headers;
  if (!keep_alive) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  if (!head) {
    out += body;
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/// Whether `s` is UTF-8 as PostgreSQL's UTF8 encoding accepts it: no
/// overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c < 0x80) {
      ++p;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      lo = c == 0xE0 ? 0xA0 : 0x80;
      hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      lo = c == 0xF0 ? 0x90 : 0x80;
      hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= n || p[1] < lo || p[1] > hi) {
      return false;
    }
    for (std::size_t k = 2; k <= n; ++k) {
      if (p[k] < 0x80 || p[k] > 0xBF) {
        return false;
      }
    }
    p += n + 1;
  }
  return true;
}

/// Decodes %XX escapes of one path segment; '+' stays a plus, as RFC 3986
/// paths mean it. False for a malformed escape, a NUL or bytes that are not
/// UTF-8: no stored name can contain them.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return false;
    }
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      return false;
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return valid_utf8(out);
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  std::size_t start = 1;  // http-parser guarantees the path starts with '/'
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    segments.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return segments;
}

}  // namespace

struct http_reader::parser {
  http_parser state{};
  http_parser_settings settings{};
  std::string url;
  bool url_too_long = false;
  std::vector<http_request>* out = nullptr;
  bool closed = false;  // a request without keep-alive ends the stream
  bool in_message = false;
};

namespace {

http_request route(http_parser* p, const std::string& url) {
  http_request r;
  r.keep_alive = http_should_keep_alive(p) != 0;
  const auto method = static_cast<http_method>(p->method);
  r.head = method == HTTP_HEAD;
  if (method != HTTP_GET && method != HTTP_HEAD) {
    r.response = response(405, "Method not allowed", false, r.keep_alive, "Allow: GET, HEAD\r\n");
    return r;
  }
  http_parser_url parts;
  http_parser_url_init(&parts);
  if (http_parser_parse_url(url.data(), url.size(), 0, &parts) != 0 ||
      (parts.field_set & (1U << UF_PATH)) == 0) {
    r.response = response(400, "Bad request", r.head, r.keep_alive);
    return r;
  }
  const std::string_view path(url.data() + parts.field_data[UF_PATH].off,
                              parts.field_data[UF_PATH].len);
  auto segments = split_path(path);
  if (segments.size() == 4 && segments[0] == "api") {
    segments.erase(segments.begin());
  }
  if (segments.size() != 3 || segments[0] != "confo" || segments[1].empty() ||
      segments[2].empty()) {
    r.response = response(404, "Not found", r.head, r.keep_alive);
    return r;
  }
  confo_query q;
  if (!percent_decode(segments[1], q.device_name) || !percent_decode(segments[2], q.ssid)) {
    r.response = response(400, "Bad request", r.head, r.keep_alive);
    return r;
  }
  r.query = std::move(q);
  return r;
}

}  // namespace

http_reader::http_reader() : parser_(std::make_unique<parser>()) {
  http_parser_init(&parser_->state, HTTP_REQUEST);
  parser_->state.data = parser_.get();
  http_parser_settings_init(&parser_->settings);
  parser_->settings.on_message_begin = [](http_parser* p) {
    auto* self = static_cast<parser*>(p->data);
    self->url.clear();
    self->url_too_long = false;
    self->in_message = true;
    return 0;
  };
  parser_->settings.on_url = [](http_parser* p, const char* at, std::size_t len) {
    auto* self = static_cast<parser*>(p->data);
    if (self->url.size() + len > max_url) {
      self->url_too_long = true;
      return 1;  // stops the parser with HPE_CB_url
    }
    self->url.append(at, len);
    return 0;
  };
  parser_->settings.on_message_complete = [](http_parser* p) {
    auto* self = static_cast<parser*>(p->data);
    self->in_message = false;
    self->out->push_back(route(p, self->url));
    if (!self->out->back().keep_alive) {
      self->closed = true;
      http_parser_pause(p, 1);
    }
    return 0;
  };
}

http_reader::~http_reader() = default;

void http_reader::feed(std::string_view bytes, std::vector<http_request>& out) {
  if (failed_ || parser_->closed || bytes.empty()) {
    return;
  }
  parser_->out = &out;
  http_parser_execute(&parser_->state, &parser_->settings, bytes.data(), bytes.size());
  const auto err = HTTP_PARSER_ERRNO(&parser_->state);
  if (err == HPE_OK || (err == HPE_PAUSED && parser_->closed)) {
    return;
  }
  failed_ = true;
  http_request refusal;
  refusal.keep_alive = false;
  if (parser_->url_too_long) {
    error_ = "request target too long";
    refusal.response = response(414, "URI too long", false, false);
  } else if (err == HPE_HEADER_OVERFLOW) {
    error_ = "headers too large";
    refusal.response = response(431, "Request header fields too large", false, false);
  } else {
    error_ = std::string("malformed HTTP request: ") + http_errno_description(err);
    refusal.response = response(400, "Bad request", false, false);
  }
  out.push_back(std::move(refusal));
}

bool http_reader::mid_request() const { return parser_->in_message; }

std::string plain_response(int status, const std::string& body, bool head, bool keep_alive) {
  return response(status, body, head, keep_alive);
}

std::string query_response(std::optional<std::int32_t> hash, bool head, bool keep_alive) {
  if (!hash) {
    return response(404, "Not found", head, keep_alive);
  }
  return response(200, std::to_string(*hash), head, keep_alive);
}

bool looks_like_http(std::string_view first_bytes) {
  // JSON may start with whitespace or '{'; an HTTP request line starts with
  // a method token, which is upper-case letters.
  return !first_bytes.empty() && std::isupper(static_cast<unsigned char>(first_bytes[0])) != 0;
}

}  // namespace locomov::protocol
