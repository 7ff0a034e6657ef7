#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace locomov::protocol {

/// A cloud confirmation ("confo") as a device posts it after provisioning,
/// validated and with its fallbacks applied.
struct confo {
  std::string device_name;  ///< byte-exact, never empty
  std::string ssid;         ///< byte-exact, never empty
  std::string email;        ///< byte-exact; empty when the device sent none
  std::int32_t hash = 0;    ///< 0 when the device sent none
  double longitude = 0;     ///< from `coords` ("lng/lat"), else the configured default
  double latitude = 0;
  /// The device's clock in microseconds since the epoch; the receipt time when
  /// the device sent none or one before 2006-01-02T15:04:05Z.
  std::int64_t device_time_us = 0;
  std::int64_t received_at_us = 0;
};

/// Coordinates used when a confo has no usable `coords`.
struct confo_defaults {
  double longitude = 77.5;
  double latitude = 13.0;
};

/// What became of one frame from the confirmation port.
struct confo_result {
  enum class kind {
    ok,           ///< `value` holds a valid confo
    invalid,      ///< JSON, but not a confo locomov can store: answer `!OK`
    undecodable,  ///< not JSON: log `reason` and close the connection
  };
  kind outcome = kind::undecodable;
  confo value;
  std::string reason;  ///< short, lower case, no newline, for the log; empty when ok
};

/// Decodes one frame (one top-level JSON value, as cut by `frame_splitter`)
/// the way Go's encoding/json fills the old service's struct: keys match
/// case-insensitively with Go's folding, the last duplicate wins, unknown keys
/// are ignored. Pure function; safe from any thread.
confo_result decode_confo(std::string_view frame, std::int64_t received_at_us,
                          const confo_defaults& defaults);

}  // namespace locomov::protocol
