// Rate-limited log lines: one per interval, with the count held back.

#include "common/log_limiter.hpp"

#include <gtest/gtest.h>

namespace locomov::logs {
namespace {

using namespace std::chrono_literals;
using clock = limiter::clock;

TEST(LogLimiter, FirstLineGoesThroughWithNothingSuppressed) {
  limiter l(1s);
  std::uint64_t suppressed = 99;
  EXPECT_TRUE(l.allow(clock::time_point{} + 5s, suppressed));
  EXPECT_EQ(suppressed, 0u);
}

TEST(LogLimiter, LinesWithinTheIntervalAreCountedAndReportedWithTheNext) {
  limiter l(1s);
  const auto t0 = clock::time_point{} + 10s;
  std::uint64_t suppressed = 0;
  ASSERT_TRUE(l.allow(t0, suppressed));
  EXPECT_FALSE(l.allow(t0 + 100ms, suppressed));
  EXPECT_FALSE(l.allow(t0 + 500ms, suppressed));
  EXPECT_FALSE(l.allow(t0 + 999ms, suppressed));
  ASSERT_TRUE(l.allow(t0 + 1s, suppressed));
  EXPECT_EQ(suppressed, 3u);
  ASSERT_TRUE(l.allow(t0 + 5s, suppressed));
  EXPECT_EQ(suppressed, 0u);
}

TEST(LogLimiter, IntervalIsMeasuredFromTheLastLineWritten) {
  limiter l(1s);
  const auto t0 = clock::time_point{} + 10s;
  std::uint64_t suppressed = 0;
  ASSERT_TRUE(l.allow(t0, suppressed));
  EXPECT_FALSE(l.allow(t0 + 900ms, suppressed));
  EXPECT_TRUE(l.allow(t0 + 1100ms, suppressed));
  EXPECT_FALSE(l.allow(t0 + 1900ms, suppressed));
}

}  // namespace
}  // namespace locomov::logs
