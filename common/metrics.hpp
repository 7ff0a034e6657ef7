#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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
  /// Sets the level to `v` if that is higher (a peak).
  void raise_to(std::int64_t v) {
    auto old = value_.load(std::memory_order_relaxed);
    while (old < v && !value_.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
    }
  }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

/// A distribution (time per message, rows per batch) over fixed bucket
/// bounds, recorded from any thread without a lock. Buckets are kept
/// separately and summed into Prometheus' cumulative form only when read.
class histogram {
 public:
  /// `bounds` ascending; an observation above the last lands in +Inf.
  explicit histogram(std::vector<double> bounds);

  void observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  /// Per bucket, not cumulative; one more than bounds() (the +Inf bucket).
  std::vector<std::uint64_t> bucket_counts() const;
  /// The buckets' total: no counter of its own to bump per observation.
  std::uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

/// Bucket bounds in seconds from 10 us to 10 s, for time per message and
/// commit latency alike, so that their quantiles compare.
const std::vector<double>& seconds_buckets();

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

/// The process-wide histogram `name{labels}`, as get_counter; `bounds` is
/// taken from the first call.
histogram& get_histogram(std::string_view name, std::string_view labels,
                         const std::vector<double>& bounds, std::string_view help = {});

/// One series' value at the moment of a snapshot.
struct sample {
  enum class kind { counter, gauge, histogram };
  kind type = kind::counter;
  std::string name;
  std::string labels;
  std::string help;
  double value = 0;  ///< a histogram's count
  // Histograms only: bounds, cumulative counts per bound (+Inf last, equal
  // to value), and the sum of observations.
  std::vector<double> bounds;
  std::vector<std::uint64_t> cumulative;
  double sum = 0;
};

/// Every series created so far, sorted by name then labels.
std::vector<sample> snapshot();

/// `samples` (sorted as snapshot() returns them) in the Prometheus text
/// exposition format, version 0.0.4: one HELP and TYPE line per metric
/// name, then its series.
std::string to_prometheus(const std::vector<sample>& samples);

}  // namespace locomov::metrics
