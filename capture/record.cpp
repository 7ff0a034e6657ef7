#include "capture/record.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "protocol/packet_decoder.hpp"

namespace locomov::capture {
namespace {

using json = nlohmann::json;

const char* event_name(event ev) {
  switch (ev) {
    case event::open:
      return "open";
    case event::in:
      return "in";
    case event::out:
      return "out";
    case event::shut:
      return "shut";
    case event::close:
      return "close";
  }
  return "?";
}

std::optional<event> event_named(std::string_view name) {
  for (auto ev : {event::open, event::in, event::out, event::shut, event::close}) {
    if (name == event_name(ev)) {
      return ev;
    }
  }
  return std::nullopt;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> unbase64(const std::string& text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out(text.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t size = static_cast<std::size_t>(n);
  for (auto i = text.rbegin(); i != text.rend() && *i == '=' && size > 0; ++i) {
    --size;
  }
  out.resize(size);
  return out;
}

/// The JSON string for `bytes`, or nullopt when they are not valid UTF-8.
std::optional<std::string> json_string(std::string_view bytes) {
  try {
    return json(std::string(bytes)).dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::type_error&) {
    return std::nullopt;
  }
}

}  // namespace

std::string format_time(std::int64_t t_us) {
  const std::time_t secs = static_cast<std::time_t>(t_us / 1'000'000 - (t_us % 1'000'000 < 0));
  const auto micros = ((t_us % 1'000'000) + 1'000'000) % 1'000'000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

std::string to_line(const record& r) {
  std::string line =
      fmt::format(R"({{"t":"{}","listener":{},"conn":{},"peer":{},"ev":"{}")",
                  format_time(r.t_us), json(r.listener).dump(), r.conn,
                  json(r.peer).dump(-1, ' ', false, json::error_handler_t::replace),
                  event_name(r.ev));
  if (r.ev == event::in || r.ev == event::out) {
    if (auto text = json_string(r.data)) {
      line += ",\"data\":" + *text;
    } else {
      line += ",\"b64\":\"" + base64(r.data) + "\"";
    }
  }
  if (r.ev == event::close) {
    line += r.by == closer::peer ? R"(,"by":"peer")" : R"(,"by":"locomov")";
  }
  line += '}';
  return line;
}

std::optional<record> parse_line(std::string_view line, std::string& error) {
  json doc;
  try {
    doc = json::parse(line);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number past a double's range.
    error = std::string("not JSON: ") + e.what();
    return std::nullopt;
  }
  if (!doc.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  auto text_field = [&](const char* key) -> const std::string* {
    auto i = doc.find(key);
    return i != doc.end() && i->is_string() ? i->get_ptr<const std::string*>() : nullptr;
  };
  record r;
  const auto* t = text_field("t");
  if (t == nullptr || !protocol::parse_rfc3339(*t, r.t_us)) {
    error = "no RFC 3339 time in \"t\"";
    return std::nullopt;
  }
  const auto* ev = text_field("ev");
  const auto kind = ev != nullptr ? event_named(*ev) : std::nullopt;
  if (!kind) {
    error = "\"ev\" is not open, in, out, shut or close";
    return std::nullopt;
  }
  r.ev = *kind;
  auto conn = doc.find("conn");
  if (conn == doc.end() || !conn->is_number_unsigned()) {
    error = "no connection number in \"conn\"";
    return std::nullopt;
  }
  r.conn = conn->get<std::uint64_t>();
  if (const auto* listener = text_field("listener")) {
    r.listener = *listener;
  }
  if (const auto* peer = text_field("peer")) {
    r.peer = *peer;
  }
  if (r.ev == event::in || r.ev == event::out) {
    if (const auto* data = text_field("data")) {
      r.data = *data;
    } else if (const auto* b64 = text_field("b64")) {
      auto bytes = unbase64(*b64);
      if (!bytes) {
        error = "\"b64\" is not base64";
        return std::nullopt;
      }
      r.data = std::move(*bytes);
    } else {
      error = "an in or out record without \"data\" or \"b64\"";
      return std::nullopt;
    }
  }
  if (r.ev == event::close) {
    const auto* by = text_field("by");
    r.by = by != nullptr && *by == "locomov" ? closer::locomov : closer::peer;
  }
  return r;
}

std::vector<record> read_files(const std::vector<std::filesystem::path>& files) {
  std::vector<record> all;
  for (const auto& path : files) {
    std::ifstream in(path);
    if (!in) {
      throw std::runtime_error(path.string() + ": cannot be read");
    }
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty()) {
        continue;
      }
      std::string error;
      auto r = parse_line(line, error);
      if (!r) {
        throw std::runtime_error(fmt::format("{}:{}: {}", path.string(), number, error));
      }
      all.push_back(std::move(*r));
    }
  }
  // The recorder's times strictly increase and each connection's records
  // are written in order, so ordering by time alone keeps every
  // connection's order, whatever order the files were named in.
  std::stable_sort(all.begin(), all.end(),
                   [](const record& a, const record& b) { return a.t_us < b.t_us; });
  return all;
}

}  // namespace locomov::capture
