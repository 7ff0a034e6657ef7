// Connection places, overall and per address, shared by the listeners.

#include "actors/admission.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "common/metrics.hpp"

namespace locomov::actors {
namespace {

using verdict = admission::verdict;

TEST(Admission, AdmitsUpToTheOverallLimit) {
  admission a(2, 0);
  admission::ticket first;
  admission::ticket second;
  admission::ticket third;

  EXPECT_EQ(a.admit("192.0.2.1", first), verdict::admitted);
  EXPECT_EQ(a.admit("192.0.2.2", second), verdict::admitted);
  EXPECT_EQ(a.admit("192.0.2.3", third), verdict::overall_limit);

  EXPECT_TRUE(first);
  EXPECT_FALSE(third);
  EXPECT_EQ(a.open(), 2u);
}

TEST(Admission, ReleasedTicketFreesItsPlace) {
  admission a(1, 0);
  admission::ticket first;
  admission::ticket second;
  ASSERT_EQ(a.admit("192.0.2.1", first), verdict::admitted);

  first.release();

  EXPECT_EQ(a.open(), 0u);
  EXPECT_EQ(a.admit("192.0.2.1", second), verdict::admitted);
}

TEST(Admission, DestroyedTicketFreesItsPlace) {
  admission a(1, 1);
  {
    admission::ticket t;
    ASSERT_EQ(a.admit("192.0.2.1", t), verdict::admitted);
  }
  admission::ticket again;
  EXPECT_EQ(a.admit("192.0.2.1", again), verdict::admitted);
}

TEST(Admission, MovedTicketKeepsOnePlace) {
  admission a(2, 0);
  admission::ticket t;
  ASSERT_EQ(a.admit("192.0.2.1", t), verdict::admitted);

  admission::ticket moved = std::move(t);
  std::vector<admission::ticket> held;
  held.push_back(std::move(moved));

  EXPECT_EQ(a.open(), 1u);
  held.clear();
  EXPECT_EQ(a.open(), 0u);
}

TEST(Admission, EachAddressGetsItsShare) {
  admission a(10, 2);
  std::vector<admission::ticket> held(4);

  EXPECT_EQ(a.admit("192.0.2.1", held[0]), verdict::admitted);
  EXPECT_EQ(a.admit("192.0.2.1", held[1]), verdict::admitted);
  EXPECT_EQ(a.admit("192.0.2.1", held[2]), verdict::address_limit);
  EXPECT_EQ(a.admit("2001:db8::1", held[3]), verdict::admitted);

  held[0].release();
  EXPECT_EQ(a.admit("192.0.2.1", held[0]), verdict::admitted);
}

TEST(Admission, AddressLimitIsReportedBeforeTheOverallLimit) {
  admission a(2, 2);
  std::vector<admission::ticket> held(3);
  ASSERT_EQ(a.admit("192.0.2.1", held[0]), verdict::admitted);
  ASSERT_EQ(a.admit("192.0.2.1", held[1]), verdict::admitted);

  EXPECT_EQ(a.admit("192.0.2.1", held[2]), verdict::address_limit);
  EXPECT_EQ(a.admit("192.0.2.9", held[2]), verdict::overall_limit);
}

TEST(Admission, ZeroPerAddressMeansNoAddressLimit) {
  admission a(100, 0);
  std::vector<admission::ticket> held(100);
  for (auto& t : held) {
    ASSERT_EQ(a.admit("192.0.2.1", t), verdict::admitted);
  }
}

TEST(Admission, OpenGaugeFollowsThePlacesTaken) {
  admission a(5, 0);
  auto& open = metrics::get_gauge("locomov_connections_open");
  admission::ticket t;

  ASSERT_EQ(a.admit("192.0.2.1", t), verdict::admitted);
  EXPECT_EQ(open.value(), 1);
  t.release();
  EXPECT_EQ(open.value(), 0);
}

TEST(Admission, NewLimitsApplyToLaterConnectionsOnly) {
  admission a(2, 0);
  admission::ticket first;
  admission::ticket second;
  admission::ticket third;
  ASSERT_EQ(a.admit("192.0.2.1", first), verdict::admitted);
  ASSERT_EQ(a.admit("192.0.2.1", second), verdict::admitted);

  a.set_limits(1, 1);

  EXPECT_TRUE(first);
  EXPECT_TRUE(second);
  EXPECT_EQ(a.open(), 2u);
  EXPECT_EQ(a.admit("192.0.2.1", third), verdict::address_limit);
  EXPECT_EQ(a.admit("192.0.2.2", third), verdict::overall_limit);
  EXPECT_EQ(a.max_total(), 1u);
  EXPECT_EQ(a.max_per_address(), 1u);

  a.set_limits(4, 0);

  EXPECT_EQ(a.admit("192.0.2.1", third), verdict::admitted);
  EXPECT_EQ(a.open(), 3u);
}

TEST(DefaultMaxConnections, KeepsAReserveForTheDatabaseAndFiles) {
  EXPECT_EQ(default_max_connections(1024), 960u);
  EXPECT_EQ(default_max_connections(65536), 16384u);
  EXPECT_EQ(default_max_connections(100), 50u);
  EXPECT_EQ(default_max_connections(1), 1u);
}

}  // namespace
}  // namespace locomov::actors
