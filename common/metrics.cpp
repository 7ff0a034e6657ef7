#include "common/metrics.hpp"

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

}  // namespace locomov::metrics
