// Decoding of the confirmation port's confos, as the old Go service's
// encoding/json filled its struct. Fixed reasons, for the log only (the
// device's answer is a bare `!OK`):
//   not a JSON object, wrong type for <key>, <key> is not an integer,
//   <key> out of range, invalid UTF-8 in a string, number out of range,
//   no deviceName, empty deviceName, no ssid, empty ssid, NUL in <key>.

#include "protocol/confo.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <system_error>

#include "protocol/go_keys.hpp"
#include "protocol/json_error.hpp"

namespace locomov::protocol {
namespace {

// 2006-01-02T15:04:05Z: the old service replaced earlier (and missing)
// device times by the receipt time.
constexpr std::int64_t go_reference_time_s = 1'136'214'245;
constexpr std::int64_t us_per_s = 1'000'000;

enum slot : std::uint8_t { device_name, ssid, email, coords, timestamp, hash, slot_count, none };

constexpr std::array<std::string_view, slot_count> key_names = {
    "devicename", "ssid", "email", "coords", "timestamp", "hash"};
constexpr std::array<std::string_view, slot_count> display_names = {
    "deviceName", "ssid", "email", "coords", "timestamp", "hash"};
constexpr std::size_t max_key_len = 10;

slot find_slot(std::string_view key) {
  char folded[max_key_len];
  const std::size_t len = go_fold_key(key, folded, max_key_len);
  if (len > max_key_len) {
    return none;
  }
  for (std::size_t i = 0; i < slot_count; ++i) {
    if (key_names[i] == std::string_view(folded, len)) {
      return static_cast<slot>(i);
    }
  }
  return none;
}

/// SAX handler filling the fields at the top level of one object. Members
/// are applied in document order, so the last duplicate wins; a type error
/// is remembered (the first, as Go reports it) without stopping the parse.
class confo_handler {
 public:
  std::array<std::optional<std::string>, 4> strings;  // device_name .. coords
  std::optional<std::int64_t> timestamp_s;
  std::optional<std::int32_t> hash_value;
  bool top_object = false;
  std::string problem;
  std::string parse_error_text;
  std::size_t parse_error_pos = 0;

  bool null() {
    take();  // null leaves a Go field as it was
    return true;
  }

  bool boolean(bool) {
    wrong_type(take());
    return true;
  }

  bool number_integer(std::int64_t v) {
    on_integer(take(), v, false);
    return true;
  }

  bool number_unsigned(std::uint64_t v) {
    const bool fits = v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    on_integer(take(), fits ? static_cast<std::int64_t>(v) : 0, !fits);
    return true;
  }

  bool number_float(double, const std::string&) {
    const slot s = take();
    if (s == timestamp || s == hash) {
      note(std::string(display_names[s]) + " is not an integer");
    } else {
      wrong_type(s);
    }
    return true;
  }

  bool string(std::string& text) {
    const slot s = take();
    if (s < timestamp) {
      strings[s] = std::move(text);
    } else {
      wrong_type(s);
    }
    return true;
  }

  bool binary(nlohmann::json::binary_t&) { return true; }

  bool start_object(std::size_t) {
    if (depth_ == 0) {
      top_object = true;
    } else {
      wrong_type(take());
    }
    ++depth_;
    return true;
  }

  bool key(std::string& k) {
    if (depth_ == 1) {
      pending_ = find_slot(k);
    }
    return true;
  }

  bool end_object() {
    --depth_;
    return true;
  }

  bool start_array(std::size_t) {
    if (depth_ > 0) {
      wrong_type(take());
    }
    ++depth_;
    return true;
  }

  bool end_array() {
    --depth_;
    return true;
  }

  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) {
    parse_error_text = e.what();
    parse_error_pos = pos;
    return false;
  }

 private:
  /// The field the value being delivered belongs to, if it is a member of
  /// the top-level object; nested values belong to nothing.
  slot take() {
    if (depth_ != 1) {
      return none;
    }
    const slot s = pending_;
    pending_ = none;
    return s;
  }

  void note(std::string text) {
    if (problem.empty()) {
      problem = std::move(text);
    }
  }

  void wrong_type(slot s) {
    if (s != none) {
      note("wrong type for " + std::string(display_names[s]));
    }
  }

  void on_integer(slot s, std::int64_t v, bool too_big) {
    if (s == timestamp) {
      if (too_big) {
        note("timestamp out of range");
      } else {
        timestamp_s = v;
      }
    } else if (s == hash) {
      if (too_big || v < std::numeric_limits<std::int32_t>::min() ||
          v > std::numeric_limits<std::int32_t>::max()) {
        note("hash out of range");
      } else {
        hash_value = static_cast<std::int32_t>(v);
      }
    } else {
      wrong_type(s);
    }
  }

  int depth_ = 0;
  slot pending_ = none;
};

confo_result failed(confo_result::kind k, std::string reason) {
  confo_result r;
  r.outcome = k;
  r.reason = std::move(reason);
  return r;
}

/// "lng/lat" as two finite decimal numbers in range, locale-independent.
bool parse_coords(const std::string& text, double& lng, double& lat) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) {
    return false;
  }
  const char* begin = text.data();
  const char* mid = begin + slash;
  const char* end = begin + text.size();
  double x = 0;
  double y = 0;
  auto a = std::from_chars(begin, mid, x);
  auto b = std::from_chars(mid + 1, end, y);
  if (a.ec != std::errc() || a.ptr != mid || b.ec != std::errc() || b.ptr != end ||
      !std::isfinite(x) || !std::isfinite(y) || x < -180 || x > 180 || y < -90 || y > 90) {
    return false;
  }
  lng = x;
  lat = y;
  return true;
}

}  // namespace

confo_result decode_confo(std::string_view frame, std::int64_t received_at_us,
                          const confo_defaults& defaults) {
  using kind = confo_result::kind;
  confo_handler h;
  const bool parsed = nlohmann::json::sax_parse(frame.begin(), frame.end(), &h);
  if (!parsed) {
    const auto& e = h.parse_error_text;
    // Go would take these as JSON and fail (or mangle) the string or number;
    // a device that sent them still deserves an answer, not a closed socket.
    if (e.find("ill-formed UTF-8") != std::string::npos ||
        e.find("surrogate") != std::string::npos) {
      return failed(kind::invalid, "invalid UTF-8 in a string");
    }
    if (e.find("number overflow") != std::string::npos) {
      return failed(kind::invalid, "number out of range");
    }
    return failed(kind::undecodable, describe_json_error(frame, h.parse_error_pos, e));
  }
  if (!h.top_object) {
    return failed(kind::invalid, "not a JSON object");
  }
  if (!h.problem.empty()) {
    return failed(kind::invalid, h.problem);
  }
  for (const slot s : {device_name, ssid}) {
    if (!h.strings[s]) {
      return failed(kind::invalid, "no " + std::string(display_names[s]));
    }
    if (h.strings[s]->empty()) {
      return failed(kind::invalid, "empty " + std::string(display_names[s]));
    }
  }
  // PostgreSQL's text cannot hold NUL; storing a truncated name would lie.
  for (const slot s : {device_name, ssid, email, coords}) {
    if (h.strings[s] && h.strings[s]->find('\0') != std::string::npos) {
      return failed(kind::invalid, "NUL in " + std::string(display_names[s]));
    }
  }

  confo_result r;
  r.outcome = kind::ok;
  auto& c = r.value;
  c.device_name = std::move(*h.strings[device_name]);
  c.ssid = std::move(*h.strings[ssid]);
  c.email = h.strings[email].value_or("");
  c.hash = h.hash_value.value_or(0);
  c.received_at_us = received_at_us;
  c.longitude = defaults.longitude;
  c.latitude = defaults.latitude;
  if (h.strings[coords]) {
    parse_coords(*h.strings[coords], c.longitude, c.latitude);
  }
  c.device_time_us = received_at_us;
  if (h.timestamp_s && *h.timestamp_s >= go_reference_time_s) {
    if (*h.timestamp_s > std::numeric_limits<std::int64_t>::max() / us_per_s) {
      return failed(kind::invalid, "timestamp out of range");
    }
    c.device_time_us = *h.timestamp_s * us_per_s;
  }
  return r;
}

}  // namespace locomov::protocol
