#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace locomov::protocol {

/// A log-safe reason for a JSON syntax error that nlohmann's SAX parser
/// reported at `pos` (its 1-based count of bytes read) with message
/// `what`: "invalid JSON at byte N: <problem>", lower case, at most one
/// line of printable ASCII, never echoing the peer's bytes. Shared by the
/// packet and confo decoders so both ports log bad bytes alike.
std::string describe_json_error(std::string_view frame, std::size_t pos, std::string_view what);

}  // namespace locomov::protocol
