#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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

/// A log file instead of stderr, and how much of its history is kept. The
/// file is rotated when the next line would take it past `max_bytes`:
/// NAME.EXT becomes NAME.1.EXT, NAME.1.EXT becomes NAME.2.EXT, and so on up
/// to `keep` (spdlog's rotating sink).
struct file_settings {
  std::filesystem::path path;             ///< empty: stderr
  std::uint64_t max_bytes = 10ull << 20;  ///< size of one file at most
  std::size_t keep = 5;                   ///< rotated files kept beside the current one
  std::chrono::seconds max_age{0};        ///< rotated files older than this go; 0: no limit
};

/// Sends every component to stderr, or to the rotating file `file.path`, at
/// `level` ("trace" ... "off"). Call once at start-up, before any other
/// thread exists. Throws std::invalid_argument on an unknown level name and
/// std::runtime_error naming the path and the reason when the file's folder
/// cannot be made or the file cannot be opened.
void init(const std::string& level, const file_settings& file = {});

/// Deletes the rotated files of `file.path` (NAME.N.EXT) whose index is over
/// `file.keep` or, when `file.max_age` is set, whose last write is older than
/// `now - file.max_age`; the current file is never touched. Returns what it
/// removed. Never throws: a file it cannot remove stays for the next round.
/// `init`'s sink calls it whenever it opens the file, at start and at each
/// rotation.
std::vector<std::filesystem::path> prune_rotated(const file_settings& file,
                                                 std::filesystem::file_time_type now);

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
