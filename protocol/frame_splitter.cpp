#include "protocol/frame_splitter.hpp"

namespace locomov::protocol {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Bytes that end a bare top-level scalar without belonging to it.
bool ends_scalar(char c) {
  switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '{':
    case '}':
    case '[':
    case ']':
    case ',':
    case ':':
    case '"':
      return true;
    default:
      return false;
  }
}

// Bytes a bare top-level scalar (number, true, false, null) can start with.
bool starts_scalar(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == 't' || c == 'f' || c == 'n';
}

}  // namespace

frame_splitter::frame_splitter(std::size_t max_frame) : max_frame_(max_frame) {
}

void frame_splitter::feed(std::string_view bytes) {
  // Dropping the consumed prefix only once it is at least as long as what
  // remains keeps every byte moved at most a constant number of times.
  if (start_ > 0 && start_ >= buf_.size() - start_) {
    buf_.erase(0, start_);
    pos_ -= start_;
    start_ = 0;
  }
  buf_.append(bytes.data(), bytes.size());
}

frame_splitter::status frame_splitter::next(std::string& out) {
  if (failed_) {
    return status::too_large;
  }
  const std::size_t size = buf_.size();
  for (; pos_ < size; ++pos_) {
    const char c = buf_[pos_];

    if (!in_value_) {
      if (is_space(c)) {
        start_ = pos_ + 1;
        continue;
      }
      start_ = pos_;
      in_value_ = true;
      switch (c) {
        case '{':
        case '[':
          depth_ = 1;
          continue;
        case '"':
          in_string_ = true;
          continue;
        case '}':
        case ']':
        case ',':
        case ':':
          // A lone structural byte is a value of its own, so the decoder can
          // reject it instead of the splitter waiting for a value forever.
          return emit(pos_ + 1, out);
        default:
          // Like Go's decoder, give up at the first byte no value can start
          // with (binary, a TLS record, text) rather than wait for a
          // delimiter that may never come.
          if (!starts_scalar(c)) {
            return emit(pos_ + 1, out);
          }
          scalar_ = true;
          break;
      }
    }

    if (scalar_) {
      if (ends_scalar(c)) {
        return emit(pos_, out);
      }
      if (pos_ - start_ >= max_frame_) {
        return fail();
      }
      continue;
    }

    if (pos_ - start_ >= max_frame_) {
      return fail();
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
        if (depth_ == 0) {
          return emit(pos_ + 1, out);
        }
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        break;
      case '{':
      case '[':
        ++depth_;
        break;
      case '}':
      case ']':
        if (--depth_ == 0) {
          return emit(pos_ + 1, out);
        }
        break;
      default:
        break;
    }
  }

  if (!in_value_) {
    // Only whitespace since the last frame: nothing worth keeping.
    buf_.clear();
    start_ = 0;
    pos_ = 0;
  }
  return status::need_more;
}

std::size_t frame_splitter::buffered() const {
  return buf_.size() - start_;
}

frame_splitter::status frame_splitter::emit(std::size_t end, std::string& out) {
  out.assign(buf_, start_, end - start_);
  start_ = end;
  pos_ = end;
  depth_ = 0;
  in_value_ = false;
  in_string_ = false;
  escape_ = false;
  scalar_ = false;
  return status::frame;
}

frame_splitter::status frame_splitter::fail() {
  failed_ = true;
  return status::too_large;
}

}  // namespace locomov::protocol
