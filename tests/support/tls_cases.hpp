#pragma once

#include <string_view>

namespace locomov::test {

// Inputs from the shared case file tls-clients.md, for the unit tests of the
// TLS session and the end-to-end tests of the daemon alike.

/// H2: TLS 1.2 ClientHello offering c02f c027 0035, with neither
/// supported_groups nor ec_point_formats.
constexpr std::string_view hello_h2 =
    "160301003d0100003903030000000000000000000000000000000000000000000000000000000000000000"
    "000006c02fc02700350100000a000d0006000404010201";

/// H3: the same offering only the ECDHE suites c02f c027.
constexpr std::string_view hello_h3 =
    "160301003b0100003703030000000000000000000000000000000000000000000000000000000000000000"
    "000004c02fc0270100000a000d0006000404010201";

/// The SimpleLink firmware's offer, from the case file's s_client line.
constexpr const char* simplelink_ciphers =
    "ECDHE-RSA-AES256-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256";

}  // namespace locomov::test
