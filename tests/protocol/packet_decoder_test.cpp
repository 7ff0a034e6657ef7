#include "protocol/packet_decoder.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cfloat>
#include <cmath>
#include <functional>
#include <ostream>
#include <string>

namespace locomov::protocol {
namespace {

using kind = decode_result::kind;

constexpr std::int64_t us = 1'000'000;
constexpr std::int64_t t_2019_05_18 = 1558137600;  // 2019-05-18T00:00:00Z
// The server received every packet an hour after the valid packet's time.
constexpr std::int64_t now_us = (t_2019_05_18 + 3600) * us;

decode_result decode(std::string_view body) {
  return decode_packet(body, now_us);
}

// Fields of the valid packet other than the id, to append to a body.
const std::string rest = R"("timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0)";

void expect_no_nan_or_infinity(const reading& r) {
  for (std::size_t i = 0; i < reading_count; ++i) {
    EXPECT_TRUE(std::isfinite(r.values[i])) << reading_fields[i].json;
  }
  EXPECT_TRUE(std::isfinite(r.lat));
  EXPECT_TRUE(std::isfinite(r.lng));
}

// ---- The cases of json-keys-and-numbers.md --------------------------------

struct table_case {
  const char* name;
  std::string body;
  kind outcome;
  std::string reason;  // exact for invalid; prefix for undecodable
  std::function<void(const reading&)> check;

  friend std::ostream& operator<<(std::ostream& os, const table_case& c) {
    return os << c.name << ": " << c.body;
  }
};

class PacketDecoderCases : public testing::TestWithParam<table_case> {};

TEST_P(PacketDecoderCases, DecodesAsGoClientsExpect) {
  const table_case& c = GetParam();
  const decode_result r = decode(c.body);
  ASSERT_EQ(r.outcome, c.outcome) << r.reason;
  switch (c.outcome) {
    case kind::ok:
      EXPECT_EQ(r.reason, "");
      expect_no_nan_or_infinity(r.value);
      if (c.check) {
        c.check(r.value);
      }
      break;
    case kind::invalid:
      EXPECT_EQ(r.reason, c.reason);
      break;
    case kind::undecodable:
      EXPECT_EQ(r.reason.rfind(c.reason, 0), 0u) << r.reason;
      break;
  }
}

std::function<void(const reading&)> id_is(std::int32_t id) {
  return [id](const reading& r) { EXPECT_EQ(r.id, id); };
}

std::function<void(const reading&)> voltage_is(float v) {
  return [v](const reading& r) {
    ASSERT_TRUE(r.has(field::voltage));
    EXPECT_EQ(r.get(field::voltage), v);
    EXPECT_FALSE(std::signbit(r.get(field::voltage)));
  };
}

std::string name_of(const testing::TestParamInfo<table_case>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(
    Keys, PacketDecoderCases,
    testing::Values(
        table_case{"GoStyleIdKey", R"({"Id":123,)" + rest + "}", kind::ok, "", id_is(123)},
        table_case{"LowerCaseIdKey", R"({"id":123,)" + rest + "}", kind::ok, "", id_is(123)},
        table_case{"UpperCaseKeys",
                   R"({"ID":123,"TIMESTAMP":1558137600,"Status":true,"VOLTAGE":231.5,"Freq":50})",
                   kind::ok, "",
                   [](const reading& r) {
                     EXPECT_EQ(r.id, 123);
                     EXPECT_EQ(r.created_at_us, t_2019_05_18 * us);
                     EXPECT_TRUE(r.status);
                     EXPECT_EQ(r.get(field::voltage), 231.5f);
                     EXPECT_EQ(r.get(field::frequency), 50.0f);
                     EXPECT_EQ(r.present, (1u << 0) | (1u << 1));
                   }},
        table_case{"LastIdWinsLowerAfterGoStyle", R"({"Id":5,"id":7,)" + rest + "}", kind::ok,
                   "", id_is(7)},
        table_case{"LastIdWinsGoStyleAfterLower", R"({"id":7,"Id":5,)" + rest + "}", kind::ok,
                   "", id_is(5)},
        table_case{"LastVoltageWins",
                   R"({"Id":1,"Voltage":230.0,"VOLTAGE":231.0,"timestamp":1558137600})", kind::ok,
                   "", voltage_is(231.0f)},
        table_case{"NestedUnknownKeyIgnored", R"({"Id":1,"extra":{"nested":[1,2]},)" + rest + "}",
                   kind::ok, "", id_is(1)},
        table_case{"IdWithPunctuationIsNoId", R"({"id!":9,)" + rest + "}", kind::invalid,
                   "no id", nullptr}),
    name_of);

INSTANTIATE_TEST_SUITE_P(
    Numbers, PacketDecoderCases,
    testing::Values(
        table_case{"BareNanVoltage", R"({"Id":7,"voltage":nan})", kind::undecodable,
                   "invalid JSON at byte ", nullptr},
        table_case{"BareInfVoltage", R"({"Id":7,"voltage":inf})", kind::undecodable,
                   "invalid JSON at byte ", nullptr},
        table_case{"NegativeInfVoltage", R"({"Id":7,"voltage":-inf})", kind::undecodable,
                   "invalid JSON at byte ", nullptr},
        table_case{"StringVoltage", R"({"Id":7,"voltage":"231.5"})", kind::invalid,
                   "wrong type for voltage", nullptr},
        table_case{"VoltageAboveReal", R"({"Id":7,"voltage":3.5e38})", kind::invalid,
                   "voltage outside REAL range", nullptr},
        table_case{"VoltageBelowNegativeReal", R"({"Id":7,"voltage":-3.5e38})", kind::invalid,
                   "voltage outside REAL range", nullptr},
        table_case{"VoltageNearRealMaximum", R"({"Id":7,"voltage":3.4e38})", kind::ok, "",
                   voltage_is(3.4e38f)},
        table_case{"TinyVoltageStoredAsZero", R"({"Id":7,"voltage":1e-46})", kind::ok, "",
                   voltage_is(0.0f)},
        table_case{"NullVoltageStoredAsNull", R"({"Id":7,"voltage":null})", kind::ok, "",
                   [](const reading& r) {
                     EXPECT_FALSE(r.has(field::voltage));
                     EXPECT_EQ(r.present, 0u);
                   }},
        table_case{"IdBeyondInteger", R"({"Id":2147483648})", kind::invalid, "id out of range",
                   nullptr},
        table_case{"IdWithFraction", R"({"Id":1.0})", kind::invalid, "id is not an integer",
                   nullptr},
        table_case{"IdWithExponent", R"({"Id":1e2})", kind::invalid, "id is not an integer",
                   nullptr},
        table_case{"IdAsString", R"({"Id":"5"})", kind::invalid, "wrong type for id", nullptr},
        table_case{"NegativeId", R"({"Id":-1})", kind::invalid, "id is not a positive integer",
                   nullptr},
        table_case{"ZeroId", R"({"Id":0})", kind::invalid, "id is not a positive integer",
                   nullptr},
        table_case{"StatusAsNumber", R"({"Id":7,"status":1})", kind::invalid,
                   "wrong type for status", nullptr},
        table_case{"NoIdKey", "{" + rest + "}", kind::invalid, "no id", nullptr}),
    name_of);

// ---- Keys -----------------------------------------------------------------

TEST(PacketDecoder, AcceptsValidPacket) {
  const auto r = decode(R"({"Id":7,)" + rest + "}");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 7);
  EXPECT_EQ(r.value.created_at_us, t_2019_05_18 * us);
  EXPECT_TRUE(r.value.status);
  EXPECT_EQ(r.value.get(field::voltage), 231.5f);
  EXPECT_EQ(r.value.get(field::frequency), 50.0f);
  EXPECT_FALSE(r.value.has_lat);
  EXPECT_FALSE(r.value.has_lng);
}

TEST(PacketDecoder, DecodesEveryField) {
  std::string body = R"({"id":42,"timestr":"2019-05-18T00:30:00.25Z","status":true,)"
                     R"("lat":-33.5,"lng":151.25)";
  for (std::size_t i = 0; i < reading_count; ++i) {
    body += ",\"" + std::string(reading_fields[i].json) + "\":" + std::to_string(i + 1) + ".5";
  }
  body += "}";
  const auto r = decode(body);
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 42);
  EXPECT_EQ(r.value.created_at_us, (t_2019_05_18 + 1800) * us + 250'000);
  EXPECT_TRUE(r.value.status);
  EXPECT_TRUE(r.value.has_lat);
  EXPECT_EQ(r.value.lat, -33.5);
  EXPECT_TRUE(r.value.has_lng);
  EXPECT_EQ(r.value.lng, 151.25);
  for (std::size_t i = 0; i < reading_count; ++i) {
    const auto f = static_cast<field>(i);
    EXPECT_TRUE(r.value.has(f)) << reading_fields[i].json;
    EXPECT_EQ(r.value.get(f), static_cast<float>(i + 1) + 0.5f) << reading_fields[i].json;
  }
}

TEST(PacketDecoder, MatchesEveryReadingKeyInAnyCase) {
  for (std::size_t i = 0; i < reading_count; ++i) {
    std::string upper(reading_fields[i].json);
    for (char& c : upper) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    const auto r = decode(R"({"Id":1,")" + upper + R"(":2})");
    ASSERT_EQ(r.outcome, kind::ok) << r.reason;
    EXPECT_EQ(r.value.present, 1u << i) << upper;
    EXPECT_EQ(r.value.get(static_cast<field>(i)), 2.0f) << upper;
  }
}

TEST(PacketDecoder, NamesReadingKeyInWrongTypeReason) {
  for (const auto& f : reading_fields) {
    const std::string key(f.json);
    EXPECT_EQ(decode(R"({"Id":1,")" + key + R"(":"1"})").reason, "wrong type for " + key);
    EXPECT_EQ(decode(R"({"Id":1,")" + key + R"(":true})").reason, "wrong type for " + key);
    EXPECT_EQ(decode(R"({"Id":1,")" + key + R"(":[1]})").reason, "wrong type for " + key);
    EXPECT_EQ(decode(R"({"Id":1,")" + key + R"(":{"v":1}})").reason, "wrong type for " + key);
  }
}

TEST(PacketDecoder, MatchesEscapedKeys) {
  const auto r = decode(R"({"\u0049d":7,"volt\u0061ge":1.5,"\u0053TATUS":true})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 7);
  EXPECT_EQ(r.value.get(field::voltage), 1.5f);
  EXPECT_TRUE(r.value.status);
}

TEST(PacketDecoder, FoldsLongSAsGoDoes) {
  // U+017F (long s), escaped and raw, matches 's' and 'S'.
  const auto r = decode("{\"Id\":7,\"\\u017Ftatus\":true,\"time\xC5\xBFtamp\":1558137600}");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_TRUE(r.value.status);
  EXPECT_EQ(r.value.created_at_us, t_2019_05_18 * us);
}

TEST(PacketDecoder, FoldsKelvinSignOnlyToK) {
  // U+212A (Kelvin sign) folds to 'k', which no known key holds, so it must
  // not stand in for any other letter.
  const auto r = decode(R"({"Id":7,"\u212Aid":9,"\u212Ad":9,"i\u212A":9})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 7);
}

TEST(PacketDecoder, DoesNotFoldTurkishDottedOrDotlessI) {
  EXPECT_EQ(decode(R"({"\u0130d":7})").reason, "no id");
  EXPECT_EQ(decode(R"({"\u0131d":7})").reason, "no id");
}

TEST(PacketDecoder, IgnoresUnknownKeysOfEveryType) {
  const auto r = decode(
      R"({"Id":3,"a":null,"b":true,"c":"x","d":1.5,"e":-7,"f":[[{"id":9,"voltage":"x"}]],)"
      R"("g":{"id":9,"h":{"status":"x"},"voltage":[1e400]},"idx":9,"voltagex":"x"})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 3);
  EXPECT_EQ(r.value.present, 0u);
}

TEST(PacketDecoder, KnownKeysInsideNestedValuesAreNotFields) {
  const auto r = decode(R"({"extra":{"Id":4},"list":[{"id":5}]})");
  EXPECT_EQ(r.outcome, kind::invalid);
  EXPECT_EQ(r.reason, "no id");
}

// ---- Id -------------------------------------------------------------------

TEST(PacketDecoder, AcceptsIdUpToIntegerMaximum) {
  EXPECT_EQ(decode(R"({"Id":1})").value.id, 1);
  EXPECT_EQ(decode(R"({"Id":2147483647})").value.id, 2147483647);
}

TEST(PacketDecoder, RejectsIdsThatAreNotPubIds) {
  EXPECT_EQ(decode(R"({"Id":-0})").reason, "id is not a positive integer");
  EXPECT_EQ(decode(R"({"Id":-2147483648})").reason, "id is not a positive integer");
  EXPECT_EQ(decode(R"({"Id":-99999999999999999999})").reason, "id is not a positive integer");
  EXPECT_EQ(decode(R"({"Id":4294967297})").reason, "id out of range");
  EXPECT_EQ(decode(R"({"Id":18446744073709551616})").reason, "id out of range");
  EXPECT_EQ(decode(R"({"Id":1.5})").reason, "id is not an integer");
  EXPECT_EQ(decode(R"({"Id":-0.0})").reason, "id is not an integer");
  EXPECT_EQ(decode(R"({"Id":1E+2})").reason, "id is not an integer");
  EXPECT_EQ(decode(R"({"Id":true})").reason, "wrong type for id");
  EXPECT_EQ(decode(R"({"Id":[7]})").reason, "wrong type for id");
  EXPECT_EQ(decode(R"({"Id":{"v":7}})").reason, "wrong type for id");
  EXPECT_EQ(decode(R"({"Id":null})").reason, "no id");
}

TEST(PacketDecoder, LastIdAssignmentDecides) {
  EXPECT_EQ(decode(R"({"id":"x","Id":5})").value.id, 5);
  EXPECT_EQ(decode(R"({"id":0,"Id":5})").value.id, 5);
  EXPECT_EQ(decode(R"({"id":5,"Id":1.5})").reason, "id is not an integer");
  EXPECT_EQ(decode(R"({"id":5,"Id":"5"})").reason, "wrong type for id");
  EXPECT_EQ(decode(R"({"id":5,"Id":null})").reason, "no id");
}

// ---- Status ---------------------------------------------------------------

TEST(PacketDecoder, ReadsStatus) {
  EXPECT_TRUE(decode(R"({"Id":1,"status":true})").value.status);
  EXPECT_FALSE(decode(R"({"Id":1,"status":false})").value.status);
  EXPECT_FALSE(decode(R"({"Id":1})").value.status);
  EXPECT_EQ(decode(R"({"Id":1,"status":null})").outcome, kind::ok);
  EXPECT_FALSE(decode(R"({"Id":1,"status":null})").value.status);
}

TEST(PacketDecoder, NullLeavesEarlierStatusAsGoDoes) {
  EXPECT_TRUE(decode(R"({"Id":1,"status":true,"status":null})").value.status);
}

TEST(PacketDecoder, RejectsStatusOfOtherType) {
  EXPECT_EQ(decode(R"({"Id":1,"status":"true"})").reason, "wrong type for status");
  EXPECT_EQ(decode(R"({"Id":1,"status":0})").reason, "wrong type for status");
  EXPECT_EQ(decode(R"({"Id":1,"status":[true]})").reason, "wrong type for status");
  EXPECT_EQ(decode(R"({"Id":1,"status":"x","status":true})").outcome, kind::ok);
}

// ---- Readings -------------------------------------------------------------

TEST(PacketDecoder, AcceptsIntegerReadings) {
  const auto r = decode(R"({"Id":1,"freq":50,"current":-3,"activePower":18446744073709551615})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.get(field::frequency), 50.0f);
  EXPECT_EQ(r.value.get(field::current), -3.0f);
  EXPECT_EQ(r.value.get(field::active_power), 18446744073709551616.0f);
}

TEST(PacketDecoder, RoundsReadingsStraightToFloatAsGo) {
  // Just above the midpoint of 1 and the next float. Through a double it
  // would land on the midpoint and round to even (1.0); Go's
  // ParseFloat(s, 32) rounds up.
  const auto r = decode(R"({"Id":1,"voltage":1.000000059604644775390625000000001})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.get(field::voltage), std::nextafter(1.0f, 2.0f));
}

TEST(PacketDecoder, RejectsReadingsBeyondRealAtTheRoundingEdge) {
  EXPECT_EQ(decode(R"({"Id":1,"voltage":3.4028235e38})").value.get(field::voltage), FLT_MAX);
  EXPECT_EQ(decode(R"({"Id":1,"voltage":-3.4028235e38})").value.get(field::voltage), -FLT_MAX);
  EXPECT_EQ(decode(R"({"Id":1,"voltage":3.4028236e38})").reason, "voltage outside REAL range");
  EXPECT_EQ(decode(R"({"Id":1,"freq":1e39})").reason, "freq outside REAL range");
  EXPECT_EQ(decode(R"({"Id":1,"freq":340282356779733661637539395458142568448})").reason,
            "freq outside REAL range");
}

TEST(PacketDecoder, StoresSubnormalReadingsAsZero) {
  for (const char* text : {"1e-40", "-1e-46", "1e-300", "-1e-400", "1.1754942e-38", "0e5"}) {
    const auto r = decode(std::string(R"({"Id":1,"voltage":)") + text + "}");
    ASSERT_EQ(r.outcome, kind::ok) << text << ": " << r.reason;
    ASSERT_TRUE(r.value.has(field::voltage)) << text;
    EXPECT_EQ(r.value.get(field::voltage), 0.0f) << text;
    EXPECT_FALSE(std::signbit(r.value.get(field::voltage))) << text;
  }
}

TEST(PacketDecoder, KeepsSmallestNormalReading) {
  const auto r = decode(R"({"Id":1,"voltage":1.1754944e-38})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.get(field::voltage), FLT_MIN);
}

TEST(PacketDecoder, RejectsNumbersBeyondDoubleAsOutOfRange) {
  EXPECT_EQ(decode(R"({"Id":1,"voltage":1e400})").reason, "voltage outside REAL range");
  EXPECT_EQ(decode(R"({"Id":1,"voltage":-1e400})").reason, "voltage outside REAL range");
  EXPECT_EQ(decode(R"({"Id":1e400})").reason, "id is not an integer");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":1e400})").reason, "timestamp is not an integer");
  EXPECT_EQ(decode(R"({"Id":1,"lat":1e400})").reason, "lat out of range");
  EXPECT_EQ(decode(R"({"Id":1,"status":1e400})").reason, "wrong type for status");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":1e400})").reason, "wrong type for timestr");
  const auto huge_int = "1" + std::string(400, '0');
  EXPECT_EQ(decode(R"({"Id":)" + huge_int + "}").reason, "id out of range");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":)" + huge_int + "}").reason,
            "timestamp out of range");
}

TEST(PacketDecoder, ReadsFieldsAroundNumbersBeyondDouble) {
  const auto r = decode(
      R"({"x":1e400,"Id":4,"y":[-1e999,"1e400"],"voltage":1e400,"freq":2e308,)"
      R"("voltage":230,"freq":50.5})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 4);
  EXPECT_EQ(r.value.get(field::voltage), 230.0f);
  EXPECT_EQ(r.value.get(field::frequency), 50.5f);
}

TEST(PacketDecoder, StillRejectsBadJsonAfterNumberBeyondDouble) {
  const auto r = decode(R"({"Id":1,"voltage":1e400,})");
  EXPECT_EQ(r.outcome, kind::undecodable);
  EXPECT_EQ(r.reason.rfind("invalid JSON at byte 24: unexpected '}'", 0), 0u) << r.reason;
  EXPECT_EQ(decode(R"({"Id":1,"voltage":01e400})").outcome, kind::undecodable);
  EXPECT_EQ(decode(R"({"Id":1,"voltage":1e400 nan})").outcome, kind::undecodable);
}

TEST(PacketDecoder, NullClearsEarlierReading) {
  const auto r = decode(R"({"Id":1,"voltage":1,"voltage":null,"freq":"x","freq":null})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.present, 0u);
  EXPECT_EQ(r.value.get(field::voltage), 0.0f);
}

TEST(PacketDecoder, LastReadingAssignmentDecides) {
  EXPECT_EQ(decode(R"({"Id":1,"voltage":"x","voltage":2})").value.get(field::voltage), 2.0f);
  EXPECT_EQ(decode(R"({"Id":1,"voltage":2,"voltage":5e38})").reason,
            "voltage outside REAL range");
}

// ---- Coordinates ----------------------------------------------------------

TEST(PacketDecoder, ReadsCoordinatesAsDoubles) {
  const auto r = decode(R"({"Id":1,"lat":-90,"lng":179.123456789012345})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_TRUE(r.value.has_lat);
  EXPECT_EQ(r.value.lat, -90.0);
  EXPECT_TRUE(r.value.has_lng);
  EXPECT_EQ(r.value.lng, 179.123456789012345);
}

TEST(PacketDecoder, AcceptsCoordinatesOnTheirBounds) {
  EXPECT_EQ(decode(R"({"Id":1,"lat":90,"lng":-180})").outcome, kind::ok);
  EXPECT_EQ(decode(R"({"Id":1,"lat":-90.0,"lng":180.0})").outcome, kind::ok);
}

TEST(PacketDecoder, RejectsCoordinatesOutOfRange) {
  EXPECT_EQ(decode(R"({"Id":1,"lat":90.000001})").reason, "lat out of range");
  EXPECT_EQ(decode(R"({"Id":1,"lat":-91})").reason, "lat out of range");
  EXPECT_EQ(decode(R"({"Id":1,"lng":180.5})").reason, "lng out of range");
  EXPECT_EQ(decode(R"({"Id":1,"lng":-1e300})").reason, "lng out of range");
}

TEST(PacketDecoder, RejectsCoordinatesOfOtherType) {
  EXPECT_EQ(decode(R"({"Id":1,"lat":"1"})").reason, "wrong type for lat");
  EXPECT_EQ(decode(R"({"Id":1,"lng":false})").reason, "wrong type for lng");
}

TEST(PacketDecoder, TreatsNullCoordinatesAsAbsent) {
  const auto r = decode(R"({"Id":1,"lat":10,"lat":null,"lng":null})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_FALSE(r.value.has_lat);
  EXPECT_EQ(r.value.lat, 0.0);
  EXPECT_FALSE(r.value.has_lng);
}

// ---- Time -----------------------------------------------------------------

TEST(PacketDecoder, UsesReceiveTimeWithoutTimestampOrTimestr) {
  const auto r = decode(R"({"Id":1})");
  ASSERT_EQ(r.outcome, kind::ok);
  EXPECT_EQ(r.value.created_at_us, now_us);
}

TEST(PacketDecoder, TimestrWinsOverTimestamp) {
  const auto r = decode(R"({"Id":1,"timestamp":1558137600,"timestr":"2019-05-18T00:00:05Z"})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.created_at_us, (t_2019_05_18 + 5) * us);
  const auto s = decode(R"({"Id":1,"timestr":"2019-05-18T00:00:05Z","timestamp":1558137600})");
  EXPECT_EQ(s.value.created_at_us, (t_2019_05_18 + 5) * us);
}

TEST(PacketDecoder, ReadsTimestrWithOffset) {
  const auto r = decode(R"({"Id":1,"timestr":"2019-05-18T02:00:00.000001+02:00"})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.created_at_us, t_2019_05_18 * us + 1);
}

TEST(PacketDecoder, RejectsBadTimestrEvenWithTimestamp) {
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":1558137600,"timestr":"yesterday"})").reason,
            "timestr is not RFC 3339");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":""})").reason, "timestr is not RFC 3339");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"2019-05-18t00:00:00z"})").reason,
            "timestr is not RFC 3339");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":1558137600})").reason, "wrong type for timestr");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":true})").reason, "wrong type for timestr");
}

TEST(PacketDecoder, NullLeavesTimestampAndTimestrAsGoDoes) {
  const auto r =
      decode(R"({"Id":1,"timestamp":1558137600,"timestamp":null,"timestr":null})");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.created_at_us, t_2019_05_18 * us);
}

TEST(PacketDecoder, RejectsTimestampThatIsNotAnInteger) {
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":1558137600.0})").reason,
            "timestamp is not an integer");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":1.5e9})").reason, "timestamp is not an integer");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":"1558137600"})").reason,
            "wrong type for timestamp");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":9223372036854775808})").reason,
            "timestamp out of range");
}

TEST(PacketDecoder, RejectsTimeBefore2000) {
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":946684799})").reason, "time before 2000-01-01");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":-1})").reason, "time before 2000-01-01");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":-9223372036854775808})").reason,
            "time before 2000-01-01");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"1999-12-31T23:59:59.999999Z"})").reason,
            "time before 2000-01-01");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"2000-01-01T00:30:00+01:00"})").reason,
            "time before 2000-01-01");
}

TEST(PacketDecoder, AcceptsTimeFrom2000) {
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":946684800})").value.created_at_us, 946684800 * us);
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"2000-01-01T00:00:00Z"})").value.created_at_us,
            946684800 * us);
}

TEST(PacketDecoder, RejectsTimeMoreThanADayAhead) {
  const std::int64_t day_ahead_s = now_us / us + 86400;
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":)" + std::to_string(day_ahead_s) + "}").outcome,
            kind::ok);
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":)" + std::to_string(day_ahead_s + 1) + "}").reason,
            "time more than 24h ahead");
  EXPECT_EQ(decode(R"({"Id":1,"timestamp":9223372036854775807})").reason,
            "time more than 24h ahead");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"2019-05-19T01:00:00Z"})").outcome, kind::ok);
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"2019-05-19T01:00:00.000001Z"})").reason,
            "time more than 24h ahead");
  EXPECT_EQ(decode(R"({"Id":1,"timestr":"9999-12-31T23:59:59Z"})").reason,
            "time more than 24h ahead");
}

// ---- Top level and syntax -------------------------------------------------

TEST(PacketDecoder, RejectsValuesThatAreNotObjects) {
  for (const char* body : {"[1,2]", "[]", "42", "-1.5", R"("Id")", "true", "[{\"Id\":1}]"}) {
    const auto r = decode(body);
    EXPECT_EQ(r.outcome, kind::invalid) << body;
    EXPECT_EQ(r.reason, "not a JSON object") << body;
  }
}

TEST(PacketDecoder, TreatsTopLevelNullAsPacketWithoutId) {
  const auto r = decode("null");
  EXPECT_EQ(r.outcome, kind::invalid);
  EXPECT_EQ(r.reason, "no id");
}

TEST(PacketDecoder, CallsBrokenJsonUndecodable) {
  for (const char* body :
       {"}", "]", ",", "GET", "HTTP/1.1", "{", R"({"Id":1)", R"({"Id":1,})", R"({"Id":1} x)",
        R"({"Id":1}{"Id":2})", R"({"Id":nul})", R"({"Id":01})", R"({"Id":1.})", R"({'Id':1})",
        R"({"Id":1,"voltage":NaN})", R"({"Id":1,"voltage":Infinity})", "[1,nan]",
        "{\"Id\":1 /* c */}", "\xEF\xBB\xBF{\"Id\":1}", "{\"Id\":1,\"note\":\"\xff\"}",
        "{\"Id\":1,\"note\":\"a\nb\"}"}) {
    const auto r = decode(body);
    EXPECT_EQ(r.outcome, kind::undecodable) << body;
    EXPECT_EQ(r.reason.rfind("invalid JSON at byte ", 0), 0u) << body << ": " << r.reason;
  }
}

TEST(PacketDecoder, NamesPositionAndProblemOfBrokenJson) {
  const auto r = decode(R"({"Id":7,"voltage":nan})");
  ASSERT_EQ(r.outcome, kind::undecodable);
  // Byte 19 is the 'a' of "nan", where it stops looking like "null".
  EXPECT_EQ(r.reason, "invalid JSON at byte 19: invalid literal");
}

TEST(PacketDecoder, NamesNulBytesRatherThanAnEndOfInput) {
  const auto r = decode(std::string("\x00\x01\x02", 3));
  ASSERT_EQ(r.outcome, kind::undecodable);
  EXPECT_EQ(r.reason, "invalid JSON at byte 0: control byte 0x00");
  const auto inside = decode(std::string("{\"Id\":1\x00}", 9));
  EXPECT_EQ(inside.reason, "invalid JSON at byte 7: control byte 0x00");
}

TEST(PacketDecoder, KeepsReasonsShortPrintableAndOnOneLine) {
  for (const char* body : {"{\"Id\":1,\"\x01\":1}", "{\"Id\":\"\xe2\x82\"}", "{\"a\":[1,2,3,x]}",
                           "{\"Id\":1,\"voltage\":\"\\ud800\"}"}) {
    const auto r = decode(body);
    EXPECT_NE(r.outcome, kind::ok) << body;
    EXPECT_LT(r.reason.size(), 120u) << r.reason;
    for (char c : r.reason) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << r.reason;
    }
  }
}

TEST(PacketDecoder, PrefersSyntaxErrorsOverFieldErrors) {
  EXPECT_EQ(decode(R"({"Id":"x","voltage":nan})").outcome, kind::undecodable);
  EXPECT_EQ(decode(R"([1,2,nan])").outcome, kind::undecodable);
}

TEST(PacketDecoder, AllowsWhitespaceAroundObject) {
  const auto r = decode(" \n{ \"Id\" : 7 ,\r\n\t\"voltage\" : 1 }\n ");
  ASSERT_EQ(r.outcome, kind::ok) << r.reason;
  EXPECT_EQ(r.value.id, 7);
}

// ---- parse_rfc3339 --------------------------------------------------------

std::int64_t rfc3339_us(std::string_view text) {
  std::int64_t out = -1;
  EXPECT_TRUE(parse_rfc3339(text, out)) << text;
  return out;
}

TEST(ParseRfc3339, ReadsUtcAndOffsets) {
  EXPECT_EQ(rfc3339_us("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00Z"), t_2019_05_18 * us);
  EXPECT_EQ(rfc3339_us("2019-05-18T05:30:00+05:30"), t_2019_05_18 * us);
  EXPECT_EQ(rfc3339_us("2019-05-17T19:00:00-05:00"), t_2019_05_18 * us);
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00-00:00"), t_2019_05_18 * us);
  EXPECT_EQ(rfc3339_us("1969-12-31T23:59:59Z"), -us);
}

TEST(ParseRfc3339, ReadsFractionalSeconds) {
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00.5Z"), t_2019_05_18 * us + 500'000);
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00.123456Z"), t_2019_05_18 * us + 123'456);
  // Nanoseconds round to the nearest microsecond, as PostgreSQL rounds them.
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00.123456789Z"), t_2019_05_18 * us + 123'457);
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00.1234564999999Z"), t_2019_05_18 * us + 123'456);
  EXPECT_EQ(rfc3339_us("2019-05-18T23:59:59.9999999Z"), (t_2019_05_18 + 86400) * us);
}

TEST(ParseRfc3339, HandlesLeapYears) {
  EXPECT_EQ(rfc3339_us("2020-02-29T00:00:00Z"), 1582934400 * us);
  EXPECT_EQ(rfc3339_us("2000-02-29T00:00:00Z"), 951782400 * us);
  EXPECT_EQ(rfc3339_us("2400-02-29T00:00:00Z"), 13574563200 * us);
  std::int64_t out = 0;
  EXPECT_FALSE(parse_rfc3339("2019-02-29T00:00:00Z", out));
  EXPECT_FALSE(parse_rfc3339("2100-02-29T00:00:00Z", out));
}

TEST(ParseRfc3339, AcceptsWhatGoTimeParseTolerates) {
  // Go's general layout parser, which time.Parse falls back to, takes these.
  EXPECT_EQ(rfc3339_us("2019-05-18T0:00:00Z"), t_2019_05_18 * us);
  EXPECT_EQ(rfc3339_us("2019-05-18T00:00:00,5Z"), t_2019_05_18 * us + 500'000);
  EXPECT_EQ(rfc3339_us("2019-05-19T00:00:00+24:00"), t_2019_05_18 * us);
  EXPECT_EQ(rfc3339_us("2019-05-18T01:00:00+00:60"), t_2019_05_18 * us);
}

TEST(ParseRfc3339, RejectsOtherText) {
  for (const char* text :
       {"", "2019-05-18", "2019-05-18T00:00Z", "2019-05-18T00:00:00", "2019-05-18 00:00:00Z",
        "2019-05-18t00:00:00Z", "2019-05-18T00:00:00z", "2019-5-18T00:00:00Z",
        "2019-05-8T00:00:00Z", "19-05-18T00:00:00Z", "+2019-05-18T00:00:00Z",
        "2019-13-18T00:00:00Z", "2019-00-18T00:00:00Z", "2019-05-32T00:00:00Z",
        "2019-05-00T00:00:00Z", "2019-04-31T00:00:00Z", "2019-05-18T24:00:00Z",
        "2019-05-18T00:60:00Z", "2019-05-18T00:00:60Z", "2019-05-18T00:0:00Z",
        "2019-05-18T00:00:00.Z", "2019-05-18T00:00:00.5", "2019-05-18T00:00:00+0200",
        "2019-05-18T00:00:00+02", "2019-05-18T00:00:00+2:00", "2019-05-18T00:00:00+25:00",
        "2019-05-18T00:00:00+02:61", "2019-05-18T00:00:00 +02:00", "2019-05-18T00:00:00ZZ",
        "2019-05-18T00:00:00Z ", " 2019-05-18T00:00:00Z", "2019-05-18T00:00:00UTC",
        "2019-05-18T00:00:00\xc2\xa0Z", "2019-05-18T00:00:00.5.5Z"}) {
    std::int64_t out = 0;
    EXPECT_FALSE(parse_rfc3339(text, out)) << text;
  }
}

}  // namespace
}  // namespace locomov::protocol
