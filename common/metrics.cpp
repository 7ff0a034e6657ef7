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
  std::unique_ptr<histogram> spread;
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
                    sample::kind type, const std::vector<double>* bounds = nullptr) {
  auto& r = instance();
  std::lock_guard lock(r.m);
  auto [it, added] = r.all.try_emplace({std::string(name), std::string(labels)});
  auto& s = it->second;
  if (added) {
    s.type = type;
    switch (type) {
      case sample::kind::counter:
        s.count = std::make_unique<counter>();
        break;
      case sample::kind::gauge:
        s.level = std::make_unique<gauge>();
        break;
      case sample::kind::histogram:
        s.spread = std::make_unique<histogram>(*bounds);
        break;
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

/// One bucket's text for a `le` label: Prometheus reads it back as a float.
std::string bound_text(double bound) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", bound);
  return text;
}

void append_value(std::string& out, double v) {
  char value[32];
  std::snprintf(value, sizeof value, " %.17g\n", v);
  out.append(value);
}

/// `name_suffix{labels,extra}`, with the comma only where both are there.
void append_series(std::string& out, const sample& s, std::string_view suffix,
                   std::string_view extra = {}) {
  out.append(s.name).append(suffix);
  if (!s.labels.empty() || !extra.empty()) {
    out.append("{").append(s.labels);
    if (!s.labels.empty() && !extra.empty()) {
      out.append(",");
    }
    out.append(extra).append("}");
  }
}

const char* type_name(sample::kind k) {
  switch (k) {
    case sample::kind::counter:
      return "counter";
    case sample::kind::gauge:
      return "gauge";
    case sample::kind::histogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void histogram::observe(double v) {
  // Few buckets: a linear walk beats a binary search's branches here.
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) {
    ++i;
  }
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  // C++17 has no fetch_add for atomic<double>.
  double old = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

std::uint64_t histogram::count() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
  }
  return total;
}

std::vector<std::uint64_t> histogram::bucket_counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  return out;
}

const std::vector<double>& seconds_buckets() {
  static const std::vector<double> bounds{0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                          0.0025,  0.005,   0.01,   0.025,   0.05,   0.1,
                                          0.25,    0.5,     1,      2.5,     5,      10};
  return bounds;
}

histogram& get_histogram(std::string_view name, std::string_view labels,
                         const std::vector<double>& bounds, std::string_view help) {
  return *find_or_add(name, labels, help, sample::kind::histogram, &bounds).spread;
}

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
    if (s.count) {
      x.value = static_cast<double>(s.count->value());
    } else if (s.level) {
      x.value = static_cast<double>(s.level->value());
    } else {
      // The count is the buckets' total, read once, so that _count and the
      // +Inf bucket agree as Prometheus requires even while observations
      // land (the sum may then be a few observations ahead).
      const auto per_bucket = s.spread->bucket_counts();
      x.sum = s.spread->sum();
      x.bounds = s.spread->bounds();
      std::uint64_t running = 0;
      for (auto n : per_bucket) {
        running += n;
        x.cumulative.push_back(running);
      }
      x.value = static_cast<double>(running);
    }
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
      out.append("# TYPE ").append(s.name).append(" ").append(type_name(s.type)).append("\n");
    }
    if (s.type != sample::kind::histogram) {
      append_series(out, s, "");
      append_value(out, s.value);
      continue;
    }
    for (std::size_t b = 0; b < s.cumulative.size(); ++b) {
      const auto le = b < s.bounds.size() ? bound_text(s.bounds[b]) : std::string("+Inf");
      append_series(out, s, "_bucket", "le=\"" + le + "\"");
      append_value(out, static_cast<double>(s.cumulative[b]));
    }
    append_series(out, s, "_sum");
    append_value(out, s.sum);
    append_series(out, s, "_count");
    append_value(out, s.value);
  }
  return out;
}

}  // namespace locomov::metrics
