#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace locomov::metrics {

/// A count that only grows, bumped from any thread without a lock.
class counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A level that goes up and down (open connections, spool bytes).
class gauge {
 public:
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::int64_t n) { value_.fetch_sub(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

/// The process-wide counter `name{labels}`, created on first use. `labels` is
/// Prometheus label text such as `reason="per_source"` (empty for none);
/// `help` is kept from the first call that gives one. The reference stays
/// valid for the life of the process: look it up once, not per packet, since
/// the lookup takes a lock.
counter& get_counter(std::string_view name, std::string_view labels = {},
                     std::string_view help = {});

/// The process-wide gauge `name{labels}`, as get_counter.
gauge& get_gauge(std::string_view name, std::string_view labels = {},
                 std::string_view help = {});

/// One series' value at the moment of a snapshot.
struct sample {
  enum class kind { counter, gauge };
  kind type = kind::counter;
  std::string name;
  std::string labels;
  std::string help;
  double value = 0;
};

/// Every series created so far, sorted by name then labels.
std::vector<sample> snapshot();

/// `samples` (sorted as snapshot() returns them) in the Prometheus text
/// exposition format, version 0.0.4: one HELP and TYPE line per metric
/// name, then its series.
std::string to_prometheus(const std::vector<sample>& samples);

}  // namespace locomov::metrics
