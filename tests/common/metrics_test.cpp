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

}  // namespace
}  // namespace locomov::metrics
