#pragma once

#include <chrono>
#include <string>

namespace locomov::storage {

/// `conninfo` (key=value pairs or a postgresql:// URI) as key=value pairs,
/// with libpq's timeouts added where neither the string nor the environment
/// (PGCONNECT_TIMEOUT, ...) sets them: connect_timeout (`timeout`, since
/// the write deadline cannot cover connecting), and for TCP connections
/// keepalives every few seconds and tcp_user_timeout (`timeout`), so the
/// kernel notices a dead peer instead of retransmitting for minutes.
/// libpq ignores the TCP ones on unix sockets. A string libpq cannot parse
/// comes back unchanged, for the connection to report the error.
std::string conninfo_with_timeouts(const std::string& conninfo,
                                   std::chrono::milliseconds timeout);

/// Whether the server `conninfo` names accepts connections now (libpq's
/// PQping: no login, so no password is needed), giving up after `timeout`.
/// For readiness probes; blocks the calling thread.
bool accepts_connections(const std::string& conninfo, std::chrono::milliseconds timeout);

}  // namespace locomov::storage
