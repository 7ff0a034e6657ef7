#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace locomov::protocol {

/// Cuts a byte stream into top-level JSON values, the way Go's json.Decoder
/// reads a stream written by json.Encoder: values follow each other with
/// nothing or whitespace between them, and may be split across reads at any
/// byte. It only finds where a value ends (strings, escapes, nesting); whether
/// the value is valid JSON is the decoder's question.
///
/// Scanning resumes where the previous call stopped, so a large value
/// arriving in many small reads costs linear time. Owned by one connection
/// actor; not thread-safe.
class frame_splitter {
 public:
  enum class status {
    frame,      ///< `next` produced a complete value
    need_more,  ///< the buffered bytes end inside a value (or hold only whitespace)
    too_large,  ///< the current value grew past `max_frame` bytes without ending
  };

  explicit frame_splitter(std::size_t max_frame);

  /// Appends received bytes.
  void feed(std::string_view bytes);

  /// Extracts the next complete value into `out` (without surrounding
  /// whitespace). After `too_large` the stream is unusable.
  status next(std::string& out);

  /// Bytes buffered but not yet returned as frames.
  std::size_t buffered() const;

 private:
  status emit(std::size_t end, std::string& out);
  status fail();

  std::string buf_;
  std::size_t start_ = 0;     // first byte of the current value (or of skipped whitespace)
  std::size_t pos_ = 0;       // next byte to scan
  std::size_t max_frame_;
  int depth_ = 0;
  bool in_value_ = false;
  bool in_string_ = false;
  bool escape_ = false;
  bool scalar_ = false;       // top-level number or literal: ends at a delimiter
  bool failed_ = false;       // a value outgrew max_frame_; the stream cannot resync
};

}  // namespace locomov::protocol
