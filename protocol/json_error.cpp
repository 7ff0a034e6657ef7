#include "protocol/json_error.hpp"

namespace locomov::protocol {

// nlohmann's message reads "[json.exception.parse_error.101] parse error at
// line 1, column 20: syntax error while parsing value - invalid literal; last
// read: '...'". The part after " - " names the problem without echoing the
// peer's bytes; the position becomes the 0-based offset of the failing byte.
std::string describe_json_error(std::string_view frame, std::size_t pos, std::string_view what) {
  constexpr std::size_t max_detail = 80;
  // nlohmann takes a NUL for the end of its input and would report a frame
  // of binary bytes as "unexpected end of input".
  for (std::size_t i = 0; i < frame.size() && i < pos; ++i) {
    if (frame[i] == '\0') {
      return "invalid JSON at byte " + std::to_string(i) + ": control byte 0x00";
    }
  }
  if (const auto dash = what.find(" - "); dash != std::string_view::npos) {
    what.remove_prefix(dash + 3);
  } else if (const auto colon = what.find(": "); colon != std::string_view::npos) {
    what.remove_prefix(colon + 2);
  }
  what = what.substr(0, what.find("; "));
  if (what.size() > max_detail) {
    what = what.substr(0, what.rfind(' ', max_detail));
  }

  const std::size_t offset = pos > 0 ? pos - 1 : 0;
  std::string reason = "invalid JSON at byte " + std::to_string(offset) + ": ";
  for (char c : what) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      reason.push_back('?');
    } else {
      reason.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    }
  }
  return reason;
}

}  // namespace locomov::protocol
