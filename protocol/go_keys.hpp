#pragma once

#include <cstddef>
#include <string_view>

namespace locomov::protocol {

/// Folds a JSON object key the way Go's encoding/json compares it with a
/// struct field's name (bytes.EqualFold): ASCII letters ignore case, and
/// U+017F (long s) and U+212A (Kelvin sign) fold to 's' and 'k'. Writes the
/// lower-case ASCII result to `out` and returns its length, or `capacity + 1`
/// when the key holds anything else or is longer than `capacity`: such a key
/// cannot match any of locomov's field names, which are all ASCII letters.
inline std::size_t go_fold_key(std::string_view key, char* out, std::size_t capacity) {
  std::size_t len = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  const auto* end = p + key.size();
  while (p < end) {
    if (len == capacity) {
      return capacity + 1;
    }
    const unsigned char c = *p;
    if (c >= 'a' && c <= 'z') {
      out[len++] = static_cast<char>(c);
      p += 1;
    } else if (c >= 'A' && c <= 'Z') {
      out[len++] = static_cast<char>(c - 'A' + 'a');
      p += 1;
    } else if (c == 0xC5 && end - p >= 2 && p[1] == 0xBF) {
      out[len++] = 's';
      p += 2;
    } else if (c == 0xE2 && end - p >= 3 && p[1] == 0x84 && p[2] == 0xAA) {
      out[len++] = 'k';
      p += 3;
    } else {
      return capacity + 1;
    }
  }
  return len;
}

}  // namespace locomov::protocol
