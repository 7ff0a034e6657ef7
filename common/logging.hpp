#pragma once

#include <memory>
#include <string>

#include <spdlog/common.h>
#include <spdlog/logger.h>

namespace locomov::logs {

/// One logger per component, so an operator can tell where a line comes from
/// and raise one component's level alone. They are created by `init`; until
/// then they log to stderr at info.
spdlog::logger& net();       ///< listeners, connections, TLS
spdlog::logger& protocol();  ///< decoding and replies
spdlog::logger& storage();   ///< database, migrations, writers
spdlog::logger& actors();    ///< pub actors, registry, lifecycle
spdlog::logger& app();       ///< start-up, signals, shutdown

/// Sends every component to stderr at `level` ("trace" ... "off").
/// Call once at start-up, before any actor exists. Throws std::invalid_argument
/// on an unknown level name.
void init(const std::string& level);

/// The level named `level` ("trace" ... "off"). Throws std::invalid_argument
/// on an unknown name, so a typo never silences the logs.
spdlog::level::level_enum parse_level(const std::string& level);

/// Sets every component's level at once, as SIGHUP does at run time. Safe
/// from any thread: spdlog loggers keep their level in an atomic.
void set_level(spdlog::level::level_enum level);

/// `text` on one line, fit to stand inside a quoted `reason="..."` field:
/// libpq's messages carry newlines, tabs before hint lines and quoted paths,
/// and a log line must stay one line of key=value fields for grep, journald
/// and log parsers. Line breaks and tabs become one space, `"` becomes `'`.
std::string one_line(const char* text);

}  // namespace locomov::logs
