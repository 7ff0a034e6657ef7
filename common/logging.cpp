#include "common/logging.hpp"

#include <array>
#include <stdexcept>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace locomov::logs {
namespace {

enum component { net_c, protocol_c, storage_c, actors_c, app_c, component_count };

constexpr std::array<const char*, component_count> names{"net", "protocol", "storage", "actors",
                                                         "app"};

std::shared_ptr<spdlog::sinks::sink> default_sink() {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  return sink;
}

std::array<std::shared_ptr<spdlog::logger>, component_count>& loggers() {
  static std::array<std::shared_ptr<spdlog::logger>, component_count> all = [] {
    std::array<std::shared_ptr<spdlog::logger>, component_count> made;
    for (int i = 0; i < component_count; ++i) {
      made[i] = std::make_shared<spdlog::logger>(names[i], default_sink());
      made[i]->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
    }
    return made;
  }();
  return all;
}

}  // namespace

spdlog::logger& net() { return *loggers()[net_c]; }
spdlog::logger& protocol() { return *loggers()[protocol_c]; }
spdlog::logger& storage() { return *loggers()[storage_c]; }
spdlog::logger& actors() { return *loggers()[actors_c]; }
spdlog::logger& app() { return *loggers()[app_c]; }

void init(const std::string& level) {
  const auto parsed = parse_level(level);
  for (auto& logger : loggers()) {
    logger->flush_on(spdlog::level::warn);
  }
  set_level(parsed);
}

spdlog::level::level_enum parse_level(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown names to "off", which would silence a typo.
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + level +
                                "' (trace, debug, info, warn, error, critical, off)");
  }
  return parsed;
}

void set_level(spdlog::level::level_enum level) {
  for (auto& logger : loggers()) {
    logger->set_level(level);
  }
}

std::string one_line(const char* text) {
  std::string out;
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c == '\n' || *c == '\r' || *c == '\t') {
      if (!out.empty() && out.back() != ' ') {
        out.push_back(' ');
      }
      continue;
    }
    // The text goes inside reason="...": a double quote of its own (libpq
    // quotes socket paths) would end the field early for a log parser.
    out.push_back(*c == '"' ? '\'' : *c);
  }
  while (!out.empty() && out.back() == ' ') {
    out.pop_back();
  }
  return out;
}

}  // namespace locomov::logs
