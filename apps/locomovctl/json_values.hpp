#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace locomov::ctl {

/// Cuts text holding JSON values one after another (one per line, or
/// concatenated with nothing between them) into the text of each value,
/// byte for byte as written, so that odd but deliberate input (duplicate
/// keys, unusual case) reaches the server unchanged. Only the boundaries are
/// found; validity is the server's question. Throws std::runtime_error when
/// the text ends inside a value.
std::vector<std::string> split_json_values(std::string_view text);

}  // namespace locomov::ctl
