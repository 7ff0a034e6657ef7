#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace locomov::capture {

/// What happened on a connection. A capture holds one record per event:
/// the connection opening, each read (the bytes after TLS, as one read
/// delivered them), each write of replies (before TLS), the peer ending its
/// sending with TLS close_notify (shut: owed replies still go out), and the
/// connection's end.
enum class event { open, in, out, shut, close };

/// Who ended a connection.
enum class closer { peer, locomov };

/// One line of a capture file (docs/capture.md).
struct record {
  std::int64_t t_us = 0;     ///< unix time in microseconds; of a read, the receipt time of its frames
  std::string listener;      ///< "packet", "plain", "confo"
  std::uint64_t conn = 0;    ///< the `conn=` of locomov's log lines
  std::string peer;          ///< "address:port"
  event ev = event::open;
  std::string data;          ///< in, out: the bytes
  closer by = closer::peer;  ///< close only
};

/// `r` as one JSON line without its newline. Bytes that are valid UTF-8 go
/// in `data` as a JSON string; others in `b64`, base64.
std::string to_line(const record& r);

/// The record a line holds, or nullopt with `error` saying what is wrong.
std::optional<record> parse_line(std::string_view line, std::string& error);

/// Every record of the capture files `files`, ordered by time; within one
/// connection, in the order they were written. Throws std::runtime_error
/// naming the file and line of the first one that is unreadable.
std::vector<record> read_files(const std::vector<std::filesystem::path>& files);

/// "2026-12-04T11:55:42.123456Z"
std::string format_time(std::int64_t t_us);

}  // namespace locomov::capture
