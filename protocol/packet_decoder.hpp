#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/reading.hpp"

namespace locomov::protocol {

/// What became of one frame from the packet port.
struct decode_result {
  enum class kind {
    ok,           ///< `value` holds a valid reading
    invalid,      ///< well-formed JSON but not a valid reading: answer `!OK <reason>`
    undecodable,  ///< not JSON at all: log `reason` and close the connection
  };
  kind outcome = kind::undecodable;
  reading value;
  std::string reason;  ///< short, lower case, no newline; empty when ok
};

/// Decodes one frame (one top-level JSON value, as cut by `frame_splitter`)
/// the way the fleet's Go clients expect: keys match case-insensitively with
/// Go's folding, the last duplicate wins, unknown keys are ignored, `timestr`
/// (RFC 3339) wins over `timestamp` (unix seconds), and with neither the
/// packet takes `received_at_us`. Times before 2000-01-01 or more than 24 h
/// after `received_at_us` are invalid. Pure function; safe from any thread.
decode_result decode_packet(std::string_view frame, std::int64_t received_at_us);

/// Parses an RFC 3339 date-time as Go's time.RFC3339 layout does (optional
/// fractional seconds, `Z` or a numeric offset) into microseconds since the
/// Unix epoch. Returns false for anything else.
bool parse_rfc3339(std::string_view text, std::int64_t& out_us);

}  // namespace locomov::protocol
