#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace locomov::fuzz {

/// Stops the run when a decoder breaks a promise its callers rely on. A
/// fuzzer counts an abort as a finding and keeps the input that caused it.
inline void check(bool holds, const char* promise) {
  if (!holds) {
    std::fprintf(stderr, "broken promise: %s\n", promise);
    std::abort();
  }
}

/// Reasons end up in log lines and in `!OK <reason>\n` replies: printable
/// ASCII only, so a peer cannot write into the log through them.
inline bool is_one_printable_line(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f) {
      return false;
    }
  }
  return true;
}

/// The input less its first byte, which picks the read size below.
inline std::string_view payload(const unsigned char* data, std::size_t size) {
  if (size == 0) {
    return {};
  }
  return {reinterpret_cast<const char*>(data) + 1, size - 1};
}

/// Cuts the fuzzer's input into reads of the sizes its first byte picks, so
/// that the stream parsers see the same bytes split in many ways.
template <typename Feed>
void feed_in_reads(const unsigned char* data, std::size_t size, Feed feed) {
  if (size == 0) {
    return;
  }
  const std::size_t step = 1 + data[0] % 64;
  auto rest = payload(data, size);
  while (!rest.empty()) {
    const auto n = rest.size() < step ? rest.size() : step;
    feed(rest.substr(0, n));
    rest.remove_prefix(n);
  }
}

}  // namespace locomov::fuzz
