#include "storage/conninfo.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace locomov::storage {
namespace {

using namespace std::chrono_literals;

// libpq lists options in its own order, not the string's.
const std::string our_timeouts =
    "connect_timeout=30 keepalives=1 keepalives_idle=10 keepalives_interval=5 "
    "keepalives_count=3 tcp_user_timeout=30000";

TEST(Conninfo, AddsTimeoutsToKeyValuePairs) {
  EXPECT_EQ(conninfo_with_timeouts("host=/var/run/pg port=5433 dbname=locomov", 30s),
            "dbname='locomov' host='/var/run/pg' port='5433' " + our_timeouts);
}

TEST(Conninfo, RoundsTheConnectTimeoutUpToSeconds) {
  const auto out = conninfo_with_timeouts("dbname=x", 2500ms);
  EXPECT_NE(out.find("connect_timeout=3 "), std::string::npos) << out;
  EXPECT_NE(out.find("tcp_user_timeout=2500"), std::string::npos) << out;
}

TEST(Conninfo, KeepsWhatTheStringSets) {
  EXPECT_EQ(conninfo_with_timeouts("dbname=x connect_timeout=5 keepalives=0", 30s),
            "connect_timeout='5' dbname='x' keepalives='0' keepalives_idle=10 "
            "keepalives_interval=5 keepalives_count=3 tcp_user_timeout=30000");
}

TEST(Conninfo, KeepsWhatTheEnvironmentSets) {
  ::setenv("PGCONNECT_TIMEOUT", "7", 1);
  const auto out = conninfo_with_timeouts("dbname=x", 30s);
  ::unsetenv("PGCONNECT_TIMEOUT");
  EXPECT_EQ(out.find("connect_timeout"), std::string::npos) << out;
}

TEST(Conninfo, ReadsUris) {
  EXPECT_EQ(conninfo_with_timeouts("postgresql://meter@db.example:6543/readings?sslmode=require",
                                   30s),
            "user='meter' dbname='readings' host='db.example' port='6543' sslmode='require' " +
                our_timeouts);
}

TEST(Conninfo, QuotesValuesBackslashesAndQuotes) {
  EXPECT_EQ(conninfo_with_timeouts(R"(dbname='it\'s here' password=a\\b)", 30s),
            R"(password='a\\b' dbname='it\'s here' )" + our_timeouts);
}

TEST(Conninfo, EmptyStringGetsOnlyTheTimeouts) {
  EXPECT_EQ(conninfo_with_timeouts("", 30s), our_timeouts);
}

TEST(Conninfo, ReturnsWhatLibpqCannotParseUnchanged) {
  EXPECT_EQ(conninfo_with_timeouts("no_such_option=1", 30s), "no_such_option=1");
  EXPECT_EQ(conninfo_with_timeouts("host", 30s), "host");
}

}  // namespace
}  // namespace locomov::storage
