#include "protocol/packet_decoder.hpp"

#include <nlohmann/json.hpp>

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>
#include <vector>

#include "protocol/go_keys.hpp"
#include "protocol/json_error.hpp"

namespace locomov::protocol {

namespace {

using json = nlohmann::json;

constexpr std::int64_t us_per_s = 1'000'000;
constexpr std::int64_t y2000_s = 946'684'800;  // 2000-01-01T00:00:00Z
constexpr std::int64_t max_ahead_us = 24LL * 3600 * us_per_s;

// ---- Key lookup -----------------------------------------------------------

// Slots 0..12 are the readings, in the order of `field`.
enum slot : std::uint8_t {
  slot_id = reading_count,
  slot_timestamp,
  slot_timestr,
  slot_status,
  slot_lat,
  slot_lng,
  slot_count,
  slot_none = 0xff,
};

constexpr std::size_t max_key_len = 11;  // "activepower" and its kin

struct known_key {
  char name[max_key_len + 1];  // lower case, as folded keys are
  std::uint8_t len;
};

constexpr char to_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr known_key make_key(std::string_view name) {
  known_key k{};
  for (std::size_t i = 0; i < name.size(); ++i) {
    k.name[i] = to_lower(name[i]);
  }
  k.len = static_cast<std::uint8_t>(name.size());
  return k;
}

constexpr std::array<known_key, slot_count> make_keys() {
  std::array<known_key, slot_count> keys{};
  for (std::size_t i = 0; i < reading_count; ++i) {
    keys[i] = make_key(reading_fields[i].json);
  }
  keys[slot_id] = make_key("id");
  keys[slot_timestamp] = make_key("timestamp");
  keys[slot_timestr] = make_key("timestr");
  keys[slot_status] = make_key("status");
  keys[slot_lat] = make_key("lat");
  keys[slot_lng] = make_key("lng");
  return keys;
}

constexpr auto known_keys = make_keys();

constexpr bool keys_fit() {
  for (const auto& f : reading_fields) {
    if (f.json.size() > max_key_len) {
      return false;
    }
    for (char c : f.json) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
        return false;
      }
    }
  }
  return true;
}
// The folding below only maps keys onto ASCII letters.
static_assert(keys_fit(), "reading keys must be ASCII letters of at most max_key_len bytes");

// Keys fold as Go folds them (go_keys.hpp); all known keys are ASCII letters.
std::uint8_t find_slot(std::string_view key) {
  char folded[max_key_len];
  const std::size_t len = go_fold_key(key, folded, max_key_len);
  if (len > max_key_len) {
    return slot_none;
  }
  for (std::uint8_t i = 0; i < slot_count; ++i) {
    if (known_keys[i].len == len && std::memcmp(known_keys[i].name, folded, len) == 0) {
      return i;
    }
  }
  return slot_none;
}

// ---- Numbers --------------------------------------------------------------

// A number the first parse could not represent as a double (1e400). It is
// replaced by a harmless 0 for a second parse and recognised by its index
// among the document's numbers.
struct huge_number {
  std::size_t index;
  bool integer_literal;
  bool negative;
};

// One JSON number as the parser delivered it.
struct number {
  enum class kind { signed_int, unsigned_int, floating, huge };
  kind type = kind::signed_int;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;
  std::string_view raw;  // digits of a floating number; empty otherwise
  bool integer_literal = false;  // only digits and a sign (an integer too big for 64 bits)
  bool negative = false;
};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool all_digits(std::string_view s) {
  if (!s.empty() && s.front() == '-') {
    s.remove_prefix(1);
  }
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!is_digit(c)) {
      return false;
    }
  }
  return true;
}

// Whether `s` is exactly one number of RFC 8259's grammar.
bool is_json_number(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') {
    ++i;
  }
  if (i == n) {
    return false;
  }
  if (s[i] == '0') {
    ++i;
  } else if (is_digit(s[i])) {
    while (i < n && is_digit(s[i])) {
      ++i;
    }
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i == n || !is_digit(s[i])) {
      return false;
    }
    while (i < n && is_digit(s[i])) {
      ++i;
    }
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      ++i;
    }
    if (i == n || !is_digit(s[i])) {
      return false;
    }
    while (i < n && is_digit(s[i])) {
      ++i;
    }
  }
  return i == n;
}

// Rough base-10 exponent of a valid JSON number: positive for numbers of
// magnitude >= 1. Only its sign is used, to tell overflow from underflow.
long decimal_magnitude(std::string_view s) {
  std::size_t i = s.front() == '-' ? 1 : 0;
  long mag = 0;
  bool seen_nonzero = false;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (s[i] != '0') {
      seen_nonzero = true;
    }
    if (seen_nonzero) {
      ++mag;
    }
  }
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && is_digit(s[i]); ++i) {
      if (seen_nonzero) {
        continue;
      }
      --mag;
      if (s[i] != '0') {
        seen_nonzero = true;
        ++mag;
      }
    }
  }
  if (i < s.size()) {
    ++i;  // 'e' or 'E'
    bool neg = false;
    if (s[i] == '+' || s[i] == '-') {
      neg = s[i] == '-';
      ++i;
    }
    long e = 0;
    for (; i < s.size(); ++i) {
      if (e < 1'000'000'000L) {
        e = e * 10 + (s[i] - '0');
      }
    }
    mag += neg ? -e : e;
  }
  return mag;
}

// Finds the numbers outside strings that overflow a double, records them and
// blanks them to `0` in `patched` (same length, so byte offsets still hold).
void blank_huge_numbers(std::string_view frame, std::string& patched,
                        std::vector<huge_number>& huge) {
  patched.assign(frame.data(), frame.size());
  std::size_t index = 0;
  std::size_t i = 0;
  const std::size_t n = frame.size();
  while (i < n) {
    const char c = frame[i];
    if (c == '"') {
      for (++i; i < n && frame[i] != '"'; ++i) {
        if (frame[i] == '\\') {
          ++i;
        }
      }
      ++i;
      continue;
    }
    if (c != '-' && !is_digit(c)) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < n && (is_digit(frame[end]) || frame[end] == '.' || frame[end] == 'e' ||
                       frame[end] == 'E' || frame[end] == '+' || frame[end] == '-')) {
      ++end;
    }
    const std::string_view token = frame.substr(i, end - i);
    if (is_json_number(token)) {
      double d = 0;
      const auto res = std::from_chars(token.data(), token.data() + token.size(), d);
      if (res.ec == std::errc::result_out_of_range && decimal_magnitude(token) > 0) {
        huge.push_back({index, all_digits(token), token.front() == '-'});
        patched[i] = '0';
        std::memset(&patched[i + 1], ' ', token.size() - 1);
      }
    }
    ++index;
    i = end;
  }
}

// ---- Per-field outcome ----------------------------------------------------

enum class problem : std::uint8_t {
  none,
  wrong_type,
  not_integer,
  not_positive,
  out_of_range,
  bad_time,
};

struct field_state {
  bool present = false;
  problem error = problem::none;

  void set_ok() {
    present = true;
    error = problem::none;
  }
  void set_error(problem p) {
    present = false;
    error = p;
  }
  void set_absent() {
    present = false;
    error = problem::none;
  }
};

// Float reading as Go's strconv.ParseFloat(text, 32) rounds it; false when
// it overflows float. Values too small for a normal float become 0, since
// PostgreSQL's REAL input rejects them.
bool to_real(const number& n, float& out) {
  float f = 0;
  switch (n.type) {
    case number::kind::signed_int:
      f = static_cast<float>(n.i);
      break;
    case number::kind::unsigned_int:
      f = static_cast<float>(n.u);
      break;
    case number::kind::huge:
      return false;
    case number::kind::floating: {
      const auto res = std::from_chars(n.raw.data(), n.raw.data() + n.raw.size(), f);
      if (res.ec == std::errc::result_out_of_range) {
        if (std::fabs(n.d) >= 1) {
          return false;
        }
        f = 0;
      } else if (res.ec != std::errc()) {
        // The lexer accepted the text, so this cannot happen; the double is
        // a safe second opinion.
        f = static_cast<float>(n.d);
      }
      break;
    }
  }
  if (!std::isfinite(f) || std::fabs(f) > FLT_MAX) {
    return false;
  }
  if (std::fabs(f) < FLT_MIN) {
    f = 0;
  }
  out = f;
  return true;
}

// ---- SAX handler ----------------------------------------------------------

class packet_handler {
 public:
  explicit packet_handler(const std::vector<huge_number>* huge) : huge_(huge) {
  }

  // Parse outcome.
  bool parse_failed = false;
  bool overflowed = false;  // failed only because a number exceeds double
  std::size_t error_pos = 0;
  std::string error_text;

  // Shape of the document.
  bool top_object = false;
  bool top_null = false;

  // Fields, indexed by slot.
  std::array<field_state, slot_count> state{};
  reading value;
  std::int64_t timestamp_s = 0;
  std::int64_t timestr_us = 0;

  bool null() {
    if (depth_ == 0) {
      top_null = true;
      return true;
    }
    if (!at_member()) {
      return true;
    }
    const std::uint8_t s = take_slot();
    // As Go does, null clears pointer fields (id, readings, coordinates) and
    // leaves plain fields (status, timestamp, timestr) as they were.
    if (s < reading_count) {
      value.clear(static_cast<field>(s));
      state[s].set_absent();
    } else if (s == slot_id || s == slot_lat || s == slot_lng) {
      state[s].set_absent();
    }
    return true;
  }

  bool boolean(bool b) {
    if (!at_member()) {
      return true;
    }
    const std::uint8_t s = take_slot();
    if (s == slot_status) {
      value.status = b;
      state[s].set_ok();
    } else if (s != slot_none) {
      wrong_type(s);
    }
    return true;
  }

  bool number_integer(std::int64_t v) {
    number n;
    n.type = number::kind::signed_int;
    n.i = v;
    n.negative = v < 0;
    return on_number(n);
  }

  bool number_unsigned(std::uint64_t v) {
    number n;
    n.type = number::kind::unsigned_int;
    n.u = v;
    return on_number(n);
  }

  bool number_float(double v, const std::string& raw) {
    number n;
    n.type = number::kind::floating;
    n.d = v;
    n.raw = raw;
    n.integer_literal = all_digits(raw);
    n.negative = !raw.empty() && raw.front() == '-';
    if (raw.find_first_not_of("0123456789eE+-.") != std::string::npos) {
      // A locale with a decimal comma made the lexer rewrite the point.
      raw_copy_ = raw;
      for (char& c : raw_copy_) {
        if (!is_digit(c) && c != 'e' && c != 'E' && c != '+' && c != '-') {
          c = '.';
        }
      }
      n.raw = raw_copy_;
    }
    return on_number(n);
  }

  bool string(std::string& text) {
    if (!at_member()) {
      return true;
    }
    const std::uint8_t s = take_slot();
    if (s == slot_timestr) {
      if (parse_rfc3339(text, timestr_us)) {
        state[s].set_ok();
      } else {
        state[s].set_error(problem::bad_time);
      }
    } else if (s != slot_none) {
      wrong_type(s);
    }
    return true;
  }

  bool binary(json::binary_t&) {
    return true;
  }

  bool start_object(std::size_t) {
    if (depth_ == 0) {
      top_object = true;
    } else {
      nested_value();
    }
    ++depth_;
    return true;
  }

  bool key(std::string& k) {
    if (depth_ == 1 && top_object) {
      slot_ = find_slot(k);
    }
    return true;
  }

  bool end_object() {
    --depth_;
    return true;
  }

  bool start_array(std::size_t) {
    if (depth_ > 0) {
      nested_value();
    }
    ++depth_;
    return true;
  }

  bool end_array() {
    --depth_;
    return true;
  }

  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) {
    parse_failed = true;
    overflowed = ex.id == 406;
    error_pos = pos;
    error_text = ex.what();
    return false;
  }

 private:
  // Whether the current value is a direct member of the top-level object.
  bool at_member() const {
    return depth_ == 1 && top_object;
  }

  std::uint8_t take_slot() {
    const std::uint8_t s = slot_;
    slot_ = slot_none;
    return s;
  }

  void wrong_type(std::uint8_t s) {
    if (s < reading_count) {
      value.clear(static_cast<field>(s));
    }
    state[s].set_error(problem::wrong_type);
  }

  // An object or array opens below depth 0; its contents are never fields.
  void nested_value() {
    if (!at_member()) {
      return;
    }
    const std::uint8_t s = take_slot();
    if (s != slot_none) {
      wrong_type(s);
    }
  }

  bool on_number(number& n) {
    const std::size_t index = numbers_seen_++;
    if (huge_ != nullptr && next_huge_ < huge_->size() && (*huge_)[next_huge_].index == index) {
      const huge_number& h = (*huge_)[next_huge_++];
      n.type = number::kind::huge;
      n.integer_literal = h.integer_literal;
      n.negative = h.negative;
    }
    if (depth_ == 0) {
      return true;
    }
    if (!at_member()) {
      return true;
    }
    const std::uint8_t s = take_slot();
    if (s == slot_none) {
      return true;
    }
    if (s < reading_count) {
      set_reading(s, n);
    } else if (s == slot_id) {
      set_id(n);
    } else if (s == slot_timestamp) {
      set_timestamp(n);
    } else if (s == slot_lat || s == slot_lng) {
      set_coordinate(s, n);
    } else {
      wrong_type(s);
    }
    return true;
  }

  void set_reading(std::uint8_t s, const number& n) {
    float f = 0;
    if (to_real(n, f)) {
      value.set(static_cast<field>(s), f);
      state[s].set_ok();
    } else {
      value.clear(static_cast<field>(s));
      state[s].set_error(problem::out_of_range);
    }
  }

  void set_id(const number& n) {
    field_state& st = state[slot_id];
    switch (n.type) {
      case number::kind::signed_int:
        // Only zero or negative values arrive here; positive ones are unsigned.
        if (n.i <= 0) {
          st.set_error(problem::not_positive);
        } else if (n.i > std::numeric_limits<std::int32_t>::max()) {
          st.set_error(problem::out_of_range);
        } else {
          value.id = static_cast<std::int32_t>(n.i);
          st.set_ok();
        }
        return;
      case number::kind::unsigned_int:
        if (n.u == 0) {
          st.set_error(problem::not_positive);
        } else if (n.u > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) {
          st.set_error(problem::out_of_range);
        } else {
          value.id = static_cast<std::int32_t>(n.u);
          st.set_ok();
        }
        return;
      case number::kind::floating:
      case number::kind::huge:
        if (!n.integer_literal) {
          st.set_error(problem::not_integer);
        } else if (n.negative) {
          st.set_error(problem::not_positive);
        } else {
          st.set_error(problem::out_of_range);
        }
        return;
    }
  }

  void set_timestamp(const number& n) {
    field_state& st = state[slot_timestamp];
    switch (n.type) {
      case number::kind::signed_int:
        timestamp_s = n.i;
        st.set_ok();
        return;
      case number::kind::unsigned_int:
        if (n.u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          st.set_error(problem::out_of_range);
        } else {
          timestamp_s = static_cast<std::int64_t>(n.u);
          st.set_ok();
        }
        return;
      case number::kind::floating:
      case number::kind::huge:
        st.set_error(n.integer_literal ? problem::out_of_range : problem::not_integer);
        return;
    }
  }

  void set_coordinate(std::uint8_t s, const number& n) {
    double d = 0;
    switch (n.type) {
      case number::kind::signed_int:
        d = static_cast<double>(n.i);
        break;
      case number::kind::unsigned_int:
        d = static_cast<double>(n.u);
        break;
      case number::kind::floating:
        d = n.d;
        break;
      case number::kind::huge:
        state[s].set_error(problem::out_of_range);
        return;
    }
    const double limit = s == slot_lat ? 90.0 : 180.0;
    if (!(d >= -limit && d <= limit)) {
      state[s].set_error(problem::out_of_range);
      return;
    }
    (s == slot_lat ? value.lat : value.lng) = d;
    state[s].set_ok();
  }

  const std::vector<huge_number>* huge_;
  std::size_t next_huge_ = 0;
  std::size_t numbers_seen_ = 0;
  int depth_ = 0;
  std::uint8_t slot_ = slot_none;
  std::string raw_copy_;
};

// ---- Result assembly ------------------------------------------------------

decode_result undecodable(std::string reason) {
  decode_result r;
  r.outcome = decode_result::kind::undecodable;
  r.reason = std::move(reason);
  return r;
}

decode_result invalid(std::string reason) {
  decode_result r;
  r.outcome = decode_result::kind::invalid;
  r.reason = std::move(reason);
  return r;
}

std::string field_problem(std::uint8_t s, problem p) {
  std::string_view name;
  if (s < reading_count) {
    name = reading_fields[s].json;
  } else {
    static constexpr std::string_view names[] = {"id", "timestamp", "timestr",
                                                 "status", "lat", "lng"};
    name = names[s - reading_count];
  }
  std::string reason;
  switch (p) {
    case problem::none:
      break;
    case problem::wrong_type:
      reason.append("wrong type for ").append(name);
      break;
    case problem::not_integer:
      reason.append(name).append(" is not an integer");
      break;
    case problem::not_positive:
      reason.append(name).append(" is not a positive integer");
      break;
    case problem::out_of_range:
      reason.append(name).append(s < reading_count ? " outside REAL range" : " out of range");
      break;
    case problem::bad_time:
      reason.append(name).append(" is not RFC 3339");
      break;
  }
  return reason;
}

// Order in which field problems are reported when several fields have one.
constexpr std::uint8_t report_order[] = {
    slot_id, slot_status, slot_timestamp, slot_timestr, 0,  1,  2,       3,      4, 5,
    6,       7,           8,              9,            10, 11, 12,      slot_lat, slot_lng,
};
static_assert(sizeof(report_order) == slot_count);

}  // namespace

decode_result decode_packet(std::string_view frame, std::int64_t received_at_us) {
  // nlohmann skips a UTF-8 byte order mark; Go's decoder rejects it.
  if (frame.size() >= 3 && frame.compare(0, 3, "\xEF\xBB\xBF") == 0) {
    return undecodable("invalid JSON at byte 0: byte order mark");
  }

  packet_handler h(nullptr);
  json::sax_parse(frame.begin(), frame.end(), &h);

  // A number beyond double makes nlohmann stop, while Go reports it as a bad
  // value and keeps reading. Parse again with such numbers blanked out; the
  // handler knows them by position.
  std::vector<huge_number> huge;
  std::string patched;
  if (h.parse_failed && h.overflowed) {
    blank_huge_numbers(frame, patched, huge);
    h = packet_handler(&huge);
    json::sax_parse(patched.begin(), patched.end(), &h);
    if (h.parse_failed && h.overflowed) {
      return undecodable("invalid JSON at byte " + std::to_string(h.error_pos - 1) +
                         ": number overflow");
    }
  }
  if (h.parse_failed) {
    return undecodable(
        describe_json_error(patched.empty() ? frame : patched, h.error_pos, h.error_text));
  }

  if (h.top_null) {
    return invalid("no id");
  }
  if (!h.top_object) {
    return invalid("not a JSON object");
  }
  for (std::uint8_t s : report_order) {
    if (h.state[s].error != problem::none) {
      return invalid(field_problem(s, h.state[s].error));
    }
  }
  if (!h.state[slot_id].present) {
    return invalid("no id");
  }

  reading& r = h.value;
  r.has_lat = h.state[slot_lat].present;
  r.has_lng = h.state[slot_lng].present;
  if (!r.has_lat) {
    r.lat = 0;
  }
  if (!r.has_lng) {
    r.lng = 0;
  }

  // Only a time the device claims is checked; the server's own clock is
  // trusted.
  r.created_at_us = received_at_us;
  if (h.state[slot_timestr].present) {
    r.created_at_us = h.timestr_us;
  } else if (h.state[slot_timestamp].present) {
    if (h.timestamp_s < y2000_s) {
      return invalid("time before 2000-01-01");
    }
    if (h.timestamp_s > std::numeric_limits<std::int64_t>::max() / us_per_s) {
      return invalid("time more than 24h ahead");
    }
    r.created_at_us = h.timestamp_s * us_per_s;
  }
  if (h.state[slot_timestr].present || h.state[slot_timestamp].present) {
    if (r.created_at_us < y2000_s * us_per_s) {
      return invalid("time before 2000-01-01");
    }
    const bool no_room = received_at_us > std::numeric_limits<std::int64_t>::max() - max_ahead_us;
    if (!no_room && r.created_at_us > received_at_us + max_ahead_us) {
      return invalid("time more than 24h ahead");
    }
  }

  decode_result ok;
  ok.outcome = decode_result::kind::ok;
  ok.value = r;
  return ok;
}

// ---- RFC 3339 -------------------------------------------------------------

namespace {

// Reads exactly `width` digits at `s[i]`.
bool fixed_digits(std::string_view s, std::size_t& i, int width, int& out) {
  if (s.size() - i < static_cast<std::size_t>(width)) {
    return false;
  }
  int v = 0;
  for (int k = 0; k < width; ++k) {
    const char c = s[i + static_cast<std::size_t>(k)];
    if (!is_digit(c)) {
      return false;
    }
    v = v * 10 + (c - '0');
  }
  i += static_cast<std::size_t>(width);
  out = v;
  return true;
}

bool literal(std::string_view s, std::size_t& i, char c) {
  if (i < s.size() && s[i] == c) {
    ++i;
    return true;
  }
  return false;
}

bool is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Days from 1970-01-01 to the given proleptic Gregorian date.
std::int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + doe - 719468;
}

}  // namespace

// Follows Go's time.Parse(time.RFC3339, ...), including what its general
// layout parser tolerates beyond the strict RFC: a one-digit hour, a comma
// before the fraction, fraction digits past the ninth (ignored), and offsets
// up to 24 hours or 60 minutes.
bool parse_rfc3339(std::string_view s, std::int64_t& out_us) {
  std::size_t i = 0;
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!fixed_digits(s, i, 4, year) || !literal(s, i, '-') || !fixed_digits(s, i, 2, month) ||
      !literal(s, i, '-') || !fixed_digits(s, i, 2, day) || !literal(s, i, 'T')) {
    return false;
  }
  if (i < s.size() && is_digit(s[i]) && i + 1 < s.size() && is_digit(s[i + 1])) {
    fixed_digits(s, i, 2, hour);
  } else if (!fixed_digits(s, i, 1, hour)) {
    return false;
  }
  if (!literal(s, i, ':') || !fixed_digits(s, i, 2, minute) || !literal(s, i, ':') ||
      !fixed_digits(s, i, 2, second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 59) {
    return false;
  }

  std::int64_t nanos = 0;
  if (s.size() - i >= 2 && (s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) {
    int digits = 0;
    for (++i; i < s.size() && is_digit(s[i]); ++i) {
      if (digits < 9) {
        nanos = nanos * 10 + (s[i] - '0');
        ++digits;
      }
    }
    for (; digits < 9; ++digits) {
      nanos *= 10;
    }
  }

  std::int64_t offset_s = 0;
  if (literal(s, i, 'Z')) {
    // UTC
  } else {
    if (s.size() - i < 6 || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':') {
      return false;
    }
    const bool negative = s[i] == '-';
    std::size_t j = i + 1;
    int off_h = 0;
    int off_m = 0;
    if (!fixed_digits(s, j, 2, off_h)) {
      return false;
    }
    ++j;
    if (!fixed_digits(s, j, 2, off_m) || off_h > 24 || off_m > 60) {
      return false;
    }
    offset_s = (off_h * 60 + off_m) * 60;
    if (negative) {
      offset_s = -offset_s;
    }
    i = j;
  }
  if (i != s.size()) {
    return false;
  }

  const std::int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 +
                               minute * 60 + second - offset_s;
  out_us = seconds * us_per_s + (nanos + 500) / 1000;
  return true;
}

}  // namespace locomov::protocol
