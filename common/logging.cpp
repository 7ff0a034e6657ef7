#include "common/logging.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

namespace locomov::logs {
namespace {

namespace fs = std::filesystem;

enum component { net_c, protocol_c, storage_c, actors_c, app_c, component_count };

constexpr std::array<const char*, component_count> names{"net", "protocol", "storage", "actors",
                                                         "app"};

constexpr const char* pattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v";

std::shared_ptr<spdlog::sinks::sink> default_sink() {
  static auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  return sink;
}

std::array<std::shared_ptr<spdlog::logger>, component_count>& loggers() {
  static std::array<std::shared_ptr<spdlog::logger>, component_count> all = [] {
    std::array<std::shared_ptr<spdlog::logger>, component_count> made;
    for (int i = 0; i < component_count; ++i) {
      made[i] = std::make_shared<spdlog::logger>(names[i], default_sink());
      made[i]->set_pattern(pattern);
    }
    return made;
  }();
  return all;
}

/// The index N of a rotated file NAME.N.EXT of `stem`/`ext`, or 0 when
/// `candidate` is not one.
std::size_t rotation_index(const std::string& candidate, const std::string& stem,
                           const std::string& ext) {
  const auto prefix = stem + ".";
  if (candidate.size() <= prefix.size() + ext.size() || candidate.rfind(prefix, 0) != 0 ||
      candidate.compare(candidate.size() - ext.size(), ext.size(), ext) != 0) {
    return 0;
  }
  const auto digits =
      candidate.substr(prefix.size(), candidate.size() - prefix.size() - ext.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  return std::stoul(digits);
}

/// Makes the log file's folder, so that a missing or forbidden folder is
/// reported with its own reason; spdlog would only say the file failed.
void make_folder_of(const fs::path& file) {
  const auto folder = file.parent_path();
  if (folder.empty()) {
    return;
  }
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) {
    throw std::runtime_error("cannot create log folder " + folder.string() + ": " + ec.message());
  }
}

/// Opens (and creates) the file once by hand first, so that a failure is
/// reported with its reason; spdlog's exception carries an errno that later
/// calls may have overwritten by the time it is caught.
void check_writable(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    throw std::runtime_error("cannot open log file " + file.string() + ": " + std::strerror(errno));
  }
  ::close(fd);
}

std::shared_ptr<spdlog::sinks::sink> rotating_sink(const file_settings& file) {
  make_folder_of(file.path);
  check_writable(file.path);
  spdlog::file_event_handlers events;
  // Runs at the first open and after each rotation, under the sink's lock:
  // the set of rotated files changes only then, so that is when the age and
  // count limits are applied. A quiet daemon that does not rotate for
  // longer than max_age keeps its old files until its next rotation or
  // start (docs/LIMITATIONS.md); a timer thread would be the cure.
  events.after_open = [file](const spdlog::filename_t&, std::FILE* stream) {
    // Processes locomov starts (pg_ctl, postgres) must not inherit it.
    ::fcntl(::fileno(stream), F_SETFD, FD_CLOEXEC);
    prune_rotated(file, fs::file_time_type::clock::now());
  };
  try {
    return std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        file.path.string(), static_cast<std::size_t>(file.max_bytes), file.keep, false, events);
  } catch (const spdlog::spdlog_ex& e) {
    throw std::runtime_error("cannot open log file " + file.path.string() + ": " + e.what());
  }
}

}  // namespace

spdlog::logger& net() { return *loggers()[net_c]; }
spdlog::logger& protocol() { return *loggers()[protocol_c]; }
spdlog::logger& storage() { return *loggers()[storage_c]; }
spdlog::logger& actors() { return *loggers()[actors_c]; }
spdlog::logger& app() { return *loggers()[app_c]; }

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

void init(const std::string& level, const file_settings& file) {
  const auto parsed = parse_level(level);
  std::shared_ptr<spdlog::sinks::sink> sink = default_sink();
  if (!file.path.empty()) {
    sink = rotating_sink(file);
    // Whoever looks at the terminal or the journal learns where the rest is.
    app().info("logging to file path={} max_bytes={} keep={} max_age={}s", file.path.string(),
               file.max_bytes, file.keep, file.max_age.count());
  }
  for (auto& logger : loggers()) {
    logger->sinks().assign(1, sink);
    logger->set_pattern(pattern);
    logger->set_level(parsed);
    // stderr is unbuffered; a file line is flushed as it is written too, so
    // that a crash loses none and `tail -f` shows it at once (one write per
    // line, as with stderr).
    logger->flush_on(file.path.empty() ? spdlog::level::warn : spdlog::level::trace);
  }
}

std::vector<fs::path> prune_rotated(const file_settings& file, fs::file_time_type now) {
  std::vector<fs::path> removed;
  const auto [stem, ext] = spdlog::details::file_helper::split_by_extension(file.path.string());
  const auto folder = file.path.parent_path().empty() ? fs::path(".") : file.path.parent_path();
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    // Compared as the sink names them: the folder as given, then the name.
    const auto candidate = (file.path.parent_path() / it->path().filename()).string();
    const auto index = rotation_index(candidate, stem, ext);
    if (index == 0) {
      continue;
    }
    bool expired = index > file.keep;
    if (!expired && file.max_age.count() > 0) {
      std::error_code time_ec;
      const auto written = fs::last_write_time(it->path(), time_ec);
      expired = !time_ec && written < now - file.max_age;
    }
    std::error_code remove_ec;
    if (expired && fs::remove(it->path(), remove_ec)) {
      removed.push_back(it->path());
    }
  }
  return removed;
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
