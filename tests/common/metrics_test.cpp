// The process-wide counters and gauges that every component reports into.

#include "common/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace locomov::metrics {
namespace {

TEST(Metrics, SameNameAndLabelsGiveTheSameSeries) {
  auto& a = get_counter("test_same_total", "reason=\"x\"", "help text");
  auto& b = get_counter("test_same_total", "reason=\"x\"");
  auto& other = get_counter("test_same_total", "reason=\"y\"");
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
}

TEST(Metrics, IncrementsFromManyThreadsAllCount) {
  auto& c = get_counter("test_threads_total");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 100000; ++i) {
        c.inc();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(c.value(), 400000u);
}

TEST(Metrics, GaugeGoesUpAndDown) {
  auto& g = get_gauge("test_level");
  g.add(5);
  g.sub(7);
  EXPECT_EQ(g.value(), -2);
  g.set(3);
  EXPECT_EQ(g.value(), 3);
}

TEST(Metrics, SnapshotListsSeriesSortedWithValuesAndHelp) {
  get_counter("test_snap_b_total").inc(2);
  get_counter("test_snap_a_total", "k=\"2\"", "second").inc(1);
  get_counter("test_snap_a_total", "k=\"1\"", "first").inc(7);
  get_gauge("test_snap_c", "", "a level").set(-4);
  std::vector<sample> ours;
  for (auto& s : snapshot()) {
    if (s.name.rfind("test_snap_", 0) == 0) {
      ours.push_back(s);
    }
  }
  ASSERT_EQ(ours.size(), 4u);
  EXPECT_EQ(ours[0].labels, "k=\"1\"");
  EXPECT_EQ(ours[0].value, 7);
  EXPECT_EQ(ours[0].help, "first");
  EXPECT_EQ(ours[1].labels, "k=\"2\"");
  EXPECT_EQ(ours[2].name, "test_snap_b_total");
  EXPECT_EQ(ours[2].value, 2);
  EXPECT_EQ(ours[3].type, sample::kind::gauge);
  EXPECT_EQ(ours[3].value, -4);
}

TEST(Metrics, OneNameCannotBeBothKinds) {
  get_counter("test_kind_total");
  EXPECT_THROW(get_gauge("test_kind_total"), std::logic_error);
}

TEST(Metrics, HistogramSnapshotIsCumulativeWithSumAndCount) {
  auto& h = get_histogram("test_hist_rows", "writer=\"0\"", {1, 10, 100});
  for (double v : {0.5, 1.0, 3.0, 10.0, 11.0, 500.0}) {
    h.observe(v);
  }
  sample ours;
  for (auto& s : snapshot()) {
    if (s.name == "test_hist_rows") {
      ours = s;
    }
  }
  ASSERT_EQ(ours.type, sample::kind::histogram);
  // A bound is inclusive (le): 1.0 is in the first bucket, 10.0 in the second.
  EXPECT_EQ(ours.cumulative, (std::vector<std::uint64_t>{2, 4, 5, 6}));
  EXPECT_EQ(ours.value, 6);
  EXPECT_DOUBLE_EQ(ours.sum, 525.5);
}

TEST(Metrics, HistogramInPrometheusTextHasBucketsSumAndCount) {
  auto& h = get_histogram("test_prom_seconds", "kind=\"pub\"", {0.001, 0.5}, "Time per message");
  h.observe(0.0002);
  h.observe(0.75);
  std::vector<sample> ours;
  for (auto& s : snapshot()) {
    if (s.name == "test_prom_seconds") {
      ours.push_back(s);
    }
  }

  EXPECT_EQ(to_prometheus(ours),
            "# HELP test_prom_seconds Time per message\n"
            "# TYPE test_prom_seconds histogram\n"
            "test_prom_seconds_bucket{kind=\"pub\",le=\"0.001\"} 1\n"
            "test_prom_seconds_bucket{kind=\"pub\",le=\"0.5\"} 1\n"
            "test_prom_seconds_bucket{kind=\"pub\",le=\"+Inf\"} 2\n"
            "test_prom_seconds_sum{kind=\"pub\"} 0.75019999999999998\n"
            "test_prom_seconds_count{kind=\"pub\"} 2\n");
}

TEST(Metrics, HistogramObservationsFromManyThreadsAllCount) {
  auto& h = get_histogram("test_hist_threads", "", seconds_buckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 50000; ++i) {
        h.observe(0.002);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(h.count(), 200000u);
  EXPECT_NEAR(h.sum(), 400.0, 1e-6);
}

}  // namespace
}  // namespace locomov::metrics
