#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace locomov::protocol {

/// The REAL-valued readings a packet may carry, in the order of `reading::values`.
/// Their JSON keys (matched case-insensitively, as Go's encoding/json does)
/// and their `packet` columns are listed in `reading_fields`.
enum class field : std::uint8_t {
  voltage,
  frequency,
  current,
  active_power,
  apparent_power,
  reactive_power,
  power_factor,
  imp_actv_enrg,
  exp_actv_enrg,
  imp_rctv_enrg,
  exp_rctv_enrg,
  ttl_actv_enrg,
  ttl_rctv_enrg,
};

inline constexpr std::size_t reading_count = 13;

struct field_names {
  std::string_view json;    ///< key in the device's packet
  std::string_view column;  ///< column of `packet` and `quarantine`
};

/// JSON key and column of each reading, indexed by `field`.
inline constexpr std::array<field_names, reading_count> reading_fields{{
    {"voltage", "voltage"},
    {"freq", "frequency"},
    {"current", "current"},
    {"activePower", "active_power"},
    {"apparentPwr", "apparent_power"},
    {"reactivePwr", "reactive_power"},
    {"powerFactor", "power_factor"},
    {"impActvEnrg", "imp_actv_enrg"},
    {"expActvEnrg", "exp_actv_enrg"},
    {"impRctvEnrg", "imp_rctv_enrg"},
    {"expRctvEnrg", "exp_rctv_enrg"},
    {"ttlActvEnrg", "ttl_actv_enrg"},
    {"ttlRctvEnrg", "ttl_rctv_enrg"},
}};

/// One decoded, validated meter packet. Plain data: copied into actor
/// messages and written by storage. Every present value is finite and fits
/// its column (REAL for readings, DOUBLE PRECISION for coordinates), so a
/// reading never carries NaN or Infinity.
struct reading {
  std::int32_t id = 0;             ///< pub id as the device sent it (> 0)
  std::int64_t created_at_us = 0;  ///< packet time, microseconds since the Unix epoch
  bool status = false;             ///< stored as `protected`
  std::uint16_t present = 0;       ///< bit i set: values[i] holds a reading; else NULL
  bool has_lat = false;
  bool has_lng = false;
  std::array<float, reading_count> values{};
  double lat = 0;
  double lng = 0;

  bool has(field f) const { return (present >> static_cast<unsigned>(f)) & 1u; }
  float get(field f) const { return values[static_cast<unsigned>(f)]; }
  void set(field f, float v) {
    values[static_cast<unsigned>(f)] = v;
    present |= static_cast<std::uint16_t>(1u << static_cast<unsigned>(f));
  }
  void clear(field f) {
    values[static_cast<unsigned>(f)] = 0;
    present &= static_cast<std::uint16_t>(~(1u << static_cast<unsigned>(f)));
  }

  friend bool operator==(const reading& a, const reading& b) {
    return a.id == b.id && a.created_at_us == b.created_at_us && a.status == b.status &&
           a.present == b.present && a.has_lat == b.has_lat && a.has_lng == b.has_lng &&
           a.values == b.values && a.lat == b.lat && a.lng == b.lng;
  }
};

}  // namespace locomov::protocol
