#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "capture/record.hpp"

namespace locomov::capture {

/// Whether a connection of `listener` whose first read was `first_data`
/// speaks HTTP (the app's query on the confirmation port).
bool speaks_http(const std::string& listener, const std::string& first_data);

/// Replies as replays compare them: one per line, or one per HTTP response
/// without its Date header, which no replay can reproduce.
std::vector<std::string> split_replies(const std::string& out, bool http);

/// How many replies `out` holds, a reply cut short counted only for HTTP.
std::size_t count_replies(const std::string& out, bool http);

/// For each record that is a read, how many replies its connection wrote
/// after it and before its next read or its end: the answers that read
/// caused. 0 for every other record.
std::vector<std::size_t> replies_caused(const std::vector<record>& records);

}  // namespace locomov::capture
