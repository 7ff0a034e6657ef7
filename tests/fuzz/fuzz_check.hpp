#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/frame_splitter.hpp"

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

/// The stream path of a device port: the input, in reads of the sizes its
/// first byte picks, cut into frames of at most `max_frame` bytes, each
/// handed to `on_frame`, until the stream ends or a frame grows too large.
template <typename OnFrame>
void split_into_frames(const unsigned char* data, std::size_t size, std::size_t max_frame,
                       OnFrame on_frame) {
  using status = protocol::frame_splitter::status;
  protocol::frame_splitter splitter(max_frame);
  std::string frame;
  bool too_large = false;
  feed_in_reads(data, size, [&](std::string_view bytes) {
    if (too_large) {
      return;
    }
    splitter.feed(bytes);
    auto s = splitter.next(frame);
    for (; s == status::frame; s = splitter.next(frame)) {
      check(frame.size() <= max_frame, "no frame is longer than max-frame");
      on_frame(frame);
    }
    too_large = s == status::too_large;
  });
}

}  // namespace locomov::fuzz
