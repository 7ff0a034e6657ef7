#include "capture/replies.hpp"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "protocol/http_query.hpp"

namespace locomov::capture {

bool speaks_http(const std::string& listener, const std::string& first_data) {
  return listener == "confo" && protocol::looks_like_http(first_data);
}

std::vector<std::string> split_replies(const std::string& out, bool http) {
  std::vector<std::string> units;
  if (!http) {
    std::size_t start = 0;
    while (start < out.size()) {
      auto end = out.find('\n', start);
      end = end == std::string::npos ? out.size() : end + 1;
      units.push_back(out.substr(start, end - start));
      start = end;
    }
    return units;
  }
  constexpr std::string_view status_line = "HTTP/1.";
  std::size_t start = out.find(status_line);
  while (start != std::string::npos) {
    auto next = out.find(status_line, start + 1);
    std::string unit = out.substr(start, next == std::string::npos ? std::string::npos : next - start);
    const auto date = unit.find("\r\nDate: ");
    if (date != std::string::npos) {
      const auto eol = unit.find("\r\n", date + 2);
      unit.erase(date, eol == std::string::npos ? std::string::npos : eol - date);
    }
    units.push_back(std::move(unit));
    start = next;
  }
  return units;
}

std::size_t count_replies(const std::string& out, bool http) {
  if (!http) {
    return static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n'));
  }
  std::size_t n = 0;
  for (auto at = out.find("HTTP/1."); at != std::string::npos; at = out.find("HTTP/1.", at + 1)) {
    ++n;
  }
  return n;
}

std::vector<std::size_t> replies_caused(const std::vector<record>& records) {
  std::vector<std::size_t> caused(records.size(), 0);
  std::unordered_map<std::uint64_t, std::size_t> last_read;
  std::unordered_map<std::uint64_t, bool> http;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    switch (r.ev) {
      case event::open:
        last_read.erase(r.conn);
        http.erase(r.conn);
        break;
      case event::in:
        if (http.find(r.conn) == http.end()) {
          http[r.conn] = speaks_http(r.listener, r.data);
        }
        last_read[r.conn] = i;
        break;
      case event::out:
        if (auto at = last_read.find(r.conn); at != last_read.end()) {
          caused[at->second] += count_replies(r.data, http[r.conn]);
        }
        break;
      case event::shut:  // replies to what was read still follow
        break;
      case event::close:
        last_read.erase(r.conn);
        break;
    }
  }
  return caused;
}

}  // namespace locomov::capture
