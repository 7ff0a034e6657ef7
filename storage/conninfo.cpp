#include "storage/conninfo.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace locomov::storage {
namespace {

/// A dead idle connection is noticed after idle + interval * count seconds.
constexpr int keepalive_idle_s = 10;
constexpr int keepalive_interval_s = 5;
constexpr int keepalive_count = 3;

/// A conninfo value in single quotes, with backslash and quote escaped.
std::string quoted(std::string_view value) {
  std::string out = "'";
  for (const char c : value) {
    if (c == '\'' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace

std::string conninfo_with_timeouts(const std::string& conninfo,
                                   std::chrono::milliseconds timeout) {
  char* error = nullptr;
  const std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> options(
      PQconninfoParse(conninfo.c_str(), &error), PQconninfoFree);
  if (!options) {
    PQfreemem(error);
    return conninfo;
  }

  const long timeout_s = static_cast<long>((timeout.count() + 999) / 1000);
  std::vector<std::pair<std::string_view, std::string>> ours{
      {"connect_timeout", std::to_string(timeout_s)},
      {"keepalives", "1"},
      {"keepalives_idle", std::to_string(keepalive_idle_s)},
      {"keepalives_interval", std::to_string(keepalive_interval_s)},
      {"keepalives_count", std::to_string(keepalive_count)},
      {"tcp_user_timeout", std::to_string(timeout.count())},
  };

  std::string out;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    const bool given = o->val != nullptr;
    const bool from_environment = o->envvar != nullptr && std::getenv(o->envvar) != nullptr;
    for (auto& [keyword, value] : ours) {
      if (keyword == o->keyword && (given || from_environment)) {
        value.clear();
      }
    }
    if (given) {
      out += (out.empty() ? "" : " ") + std::string(o->keyword) + "=" + quoted(o->val);
    }
  }
  for (const auto& [keyword, value] : ours) {
    if (!value.empty()) {
      out += (out.empty() ? "" : " ") + std::string(keyword) + "=" + value;
    }
  }
  return out;
}

bool accepts_connections(const std::string& conninfo, std::chrono::milliseconds timeout) {
  return PQping(conninfo_with_timeouts(conninfo, timeout).c_str()) == PQPING_OK;
}

}  // namespace locomov::storage
