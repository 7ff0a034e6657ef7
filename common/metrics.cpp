#include "common/metrics.hpp"

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace locomov::metrics {
namespace {

struct series {
  sample::kind type;
  std::string help;
  std::unique_ptr<counter> count;
  std::unique_ptr<gauge> level;
};

struct registry {
  std::mutex m;
  // Keyed by (name, labels); nodes never move, so handed-out references stay valid.
  std::map<std::pair<std::string, std::string>, series, std::less<>> all;
};

registry& instance() {
  // Leaked on purpose: actors may still bump counters while statics are destroyed.
  static auto* r = new registry;
  return *r;
}

series& find_or_add(std::string_view name, std::string_view labels, std::string_view help,
                    sample::kind type) {
  auto& r = instance();
  std::lock_guard lock(r.m);
  auto [it, added] = r.all.try_emplace({std::string(name), std::string(labels)});
  auto& s = it->second;
  if (added) {
    s.type = type;
    if (type == sample::kind::counter) {
      s.count = std::make_unique<counter>();
    } else {
      s.level = std::make_unique<gauge>();
    }
  }
  if (s.type != type) {
    throw std::logic_error("metric " + std::string(name) + " registered as another kind");
  }
  if (s.help.empty()) {
    s.help = std::string(help);
  }
  return s;
}

}  // namespace

counter& get_counter(std::string_view name, std::string_view labels, std::string_view help) {
  return *find_or_add(name, labels, help, sample::kind::counter).count;
}

gauge& get_gauge(std::string_view name, std::string_view labels, std::string_view help) {
  return *find_or_add(name, labels, help, sample::kind::gauge).level;
}

std::vector<sample> snapshot() {
  auto& r = instance();
  std::lock_guard lock(r.m);
  std::vector<sample> out;
  out.reserve(r.all.size());
  for (const auto& [key, s] : r.all) {
    sample x;
    x.type = s.type;
    x.name = key.first;
    x.labels = key.second;
    x.help = s.help;
    x.value = s.count ? static_cast<double>(s.count->value())
                      : static_cast<double>(s.level->value());
    out.push_back(std::move(x));
  }
  return out;
}

std::string to_prometheus(const std::vector<sample>& samples) {
  std::string out;
  out.reserve(samples.size() * 80);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    if (i == 0 || samples[i - 1].name != s.name) {
      // The family's help is the first one any of its series was given.
      std::string_view help;
      for (std::size_t j = i; j < samples.size() && samples[j].name == s.name; ++j) {
        if (!samples[j].help.empty()) {
          help = samples[j].help;
          break;
        }
      }
      if (!help.empty()) {
        out.append("# HELP ").append(s.name).append(" ");
        for (char c : help) {
          if (c == '\\') {
            out.append("\\\\");
          } else if (c == '\n') {
            out.append("\\n");
          } else {
            out.push_back(c);
          }
        }
        out.push_back('\n');
      }
      out.append("# TYPE ").append(s.name).append(
          s.type == sample::kind::counter ? " counter\n" : " gauge\n");
    }
    out.append(s.name);
    if (!s.labels.empty()) {
      out.append("{").append(s.labels).append("}");
    }
    char value[32];
    std::snprintf(value, sizeof value, " %.17g\n", s.value);
    out.append(value);
  }
  return out;
}

}  // namespace locomov::metrics
