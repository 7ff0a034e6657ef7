#include "apps/locomovctl/json_values.hpp"

#include <stdexcept>

namespace locomov::ctl {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool ends_scalar(char c) {
  return is_space(c) || c == '{' || c == '[' || c == '"' || c == '}' || c == ']';
}

}  // namespace

std::vector<std::string> split_json_values(std::string_view text) {
  std::vector<std::string> values;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (is_space(text[pos])) {
      ++pos;
      continue;
    }
    const std::size_t start = pos;
    const char first = text[pos];
    if (first != '{' && first != '[' && first != '"') {
      while (pos < text.size() && !ends_scalar(text[pos])) {
        ++pos;
      }
      values.emplace_back(text.substr(start, pos - start));
      continue;
    }

    int depth = 0;
    bool in_string = false;
    bool escape = false;
    bool done = false;
    for (; pos < text.size() && !done; ++pos) {
      const char c = text[pos];
      if (in_string) {
        if (escape) {
          escape = false;
        } else if (c == '\\') {
          escape = true;
        } else if (c == '"') {
          in_string = false;
          done = depth == 0;
        }
        continue;
      }
      if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        --depth;
        done = depth == 0;
      }
    }
    if (!done) {
      throw std::runtime_error("input ends inside a JSON value that starts at byte " +
                               std::to_string(start));
    }
    values.emplace_back(text.substr(start, pos - start));
  }
  return values;
}

}  // namespace locomov::ctl
