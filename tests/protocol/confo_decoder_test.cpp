// Confos as the fleet's Go firmware and the old Go service read them.

#include "protocol/confo.hpp"

#include <gtest/gtest.h>

#include <string>

namespace locomov::protocol {
namespace {

constexpr std::int64_t received = 1'764'547'200'000'000;  // 2025-12-01T00:00:00Z

confo_result decode(const std::string& frame) {
  return decode_confo(frame, received, confo_defaults{});
}

confo decoded(const std::string& frame) {
  auto r = decode(frame);
  EXPECT_EQ(r.outcome, confo_result::kind::ok) << frame << ": " << r.reason;
  return r.value;
}

std::string refusal(const std::string& frame) {
  auto r = decode(frame);
  EXPECT_EQ(r.outcome, confo_result::kind::invalid) << frame;
  return r.reason;
}

TEST(ConfoDecoder, ReadsEveryField) {
  auto c = decoded(
      R"({"deviceName":"meter-1","ssid":"home","timestamp":1700000000,"hash":-42,)"
      R"("email":"ravi@example.com","coords":"77.59/12.97"})");
  EXPECT_EQ(c.device_name, "meter-1");
  EXPECT_EQ(c.ssid, "home");
  EXPECT_EQ(c.device_time_us, 1'700'000'000'000'000);
  EXPECT_EQ(c.received_at_us, received);
  EXPECT_EQ(c.hash, -42);
  EXPECT_EQ(c.email, "ravi@example.com");
  EXPECT_DOUBLE_EQ(c.longitude, 77.59);
  EXPECT_DOUBLE_EQ(c.latitude, 12.97);
}

TEST(ConfoDecoder, MatchesKeysAsGoDoes) {
  for (const char* frame :
       {R"({"DeviceName":"m","SSID":"s","HASH":7,"Email":"e","COORDS":"1/2"})",
        R"({"devicename":"m","ssid":"s","hash":7,"email":"e","coords":"1/2"})",
        // U+017F (long s) folds to 's' in Go, U+212A (Kelvin) to 'k'.
        "{\"deviceName\":\"m\",\"\xC5\xBF\xC5\xBFid\":\"s\",\"hash\":7,\"email\":\"e\","
        "\"coords\":\"1/2\"}"}) {
    auto c = decoded(frame);
    EXPECT_EQ(c.device_name, "m") << frame;
    EXPECT_EQ(c.ssid, "s") << frame;
    EXPECT_EQ(c.hash, 7) << frame;
    EXPECT_EQ(c.email, "e") << frame;
    EXPECT_DOUBLE_EQ(c.longitude, 1) << frame;
  }
}

TEST(ConfoDecoder, LastDuplicateWinsAcrossSpellings) {
  auto c = decoded(R"({"deviceName":"a","DEVICENAME":"b","deviceName":"c","ssid":"s"})");
  EXPECT_EQ(c.device_name, "c");
  EXPECT_EQ(decoded(R"({"deviceName":"a","ssid":"s","Ssid":"t"})").ssid, "t");
}

TEST(ConfoDecoder, IgnoresUnknownKeysAndNestedValues) {
  auto c = decoded(R"({"deviceName":"m","extra":{"ssid":"inner","hash":[1]},"ssid":"s"})");
  EXPECT_EQ(c.ssid, "s");
  EXPECT_EQ(c.hash, 0);
}

TEST(ConfoDecoder, NullLeavesFieldsAsTheyWere) {
  auto c = decoded(R"({"deviceName":"m","ssid":"s","hash":5,"hash":null,"email":null})");
  EXPECT_EQ(c.hash, 5);
  EXPECT_EQ(c.email, "");
  EXPECT_EQ(refusal(R"({"deviceName":null,"ssid":"s"})"), "no deviceName");
}

TEST(ConfoDecoder, RequiresNonEmptyDeviceNameAndSsid) {
  EXPECT_EQ(refusal(R"({"ssid":"s"})"), "no deviceName");
  EXPECT_EQ(refusal(R"({"deviceName":"m"})"), "no ssid");
  EXPECT_EQ(refusal(R"({"deviceName":"","ssid":"s"})"), "empty deviceName");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":""})"), "empty ssid");
}

TEST(ConfoDecoder, RefusesWrongTypes) {
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":5})"), "wrong type for ssid");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":"5"})"), "wrong type for hash");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","email":true})"), "wrong type for email");
  EXPECT_EQ(refusal(R"({"deviceName":{"a":1},"ssid":"s"})"), "wrong type for deviceName");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","coords":[77,13]})"),
            "wrong type for coords");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","timestamp":"1700000000"})"),
            "wrong type for timestamp");
}

TEST(ConfoDecoder, TakesHashAsGoInt32) {
  EXPECT_EQ(decoded(R"({"deviceName":"m","ssid":"s","hash":2147483647})").hash, 2147483647);
  EXPECT_EQ(decoded(R"({"deviceName":"m","ssid":"s","hash":-2147483648})").hash, INT32_MIN);
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":2147483648})"), "hash out of range");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":-2147483649})"), "hash out of range");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":18446744073709551616})"),
            "hash is not an integer");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":1.0})"), "hash is not an integer");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":1e3})"), "hash is not an integer");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","hash":1e400})"), "number out of range");
}

TEST(ConfoDecoder, FallsBackToDefaultCoordinates) {
  const confo_defaults defaults{77.5, 13.0};
  for (const char* coords : {"", "77.5", "a/b", "77.6/12.9x", "181/0", "0/91", "nan/1",
                             "inf/1", "1,5/2", " 77.6/12.9"}) {
    const std::string frame =
        std::string(R"({"deviceName":"m","ssid":"s","coords":")") + coords + R"("})";
    auto r = decode_confo(frame, received, defaults);
    ASSERT_EQ(r.outcome, confo_result::kind::ok) << coords;
    EXPECT_DOUBLE_EQ(r.value.longitude, 77.5) << coords;
    EXPECT_DOUBLE_EQ(r.value.latitude, 13.0) << coords;
  }
  auto missing = decode_confo(R"({"deviceName":"m","ssid":"s"})", received, {1.5, -2.5});
  EXPECT_DOUBLE_EQ(missing.value.longitude, 1.5);
  EXPECT_DOUBLE_EQ(missing.value.latitude, -2.5);
  auto edge = decoded(R"({"deviceName":"m","ssid":"s","coords":"-180/-90"})");
  EXPECT_DOUBLE_EQ(edge.longitude, -180);
  EXPECT_DOUBLE_EQ(edge.latitude, -90);
}

TEST(ConfoDecoder, ReplacesMissingOrEarlyTimestampByReceiptTime) {
  EXPECT_EQ(decoded(R"({"deviceName":"m","ssid":"s"})").device_time_us, received);
  EXPECT_EQ(decoded(R"({"deviceName":"m","ssid":"s","timestamp":1136214244})").device_time_us,
            received);
  EXPECT_EQ(decoded(R"({"deviceName":"m","ssid":"s","timestamp":1136214245})").device_time_us,
            1'136'214'245'000'000);
  // A device clock restarted at 2013 is kept: only the receipt order matters.
  EXPECT_EQ(decoded(R"({"deviceName":"m","ssid":"s","timestamp":1356998400})").device_time_us,
            1'356'998'400'000'000);
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","timestamp":1.5})"),
            "timestamp is not an integer");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","timestamp":9223372036854775807})"),
            "timestamp out of range");
}

TEST(ConfoDecoder, KeepsStringsByteExact) {
  const std::string ssid = "Ravi\xE2\x80\x99s home \"5G\" x'; DROP TABLE pub;-- ";
  auto c = decoded(R"({"deviceName":"  My Meter ","ssid":"Ravi\u2019s home \"5G\" x'; DROP TABLE pub;-- "})");
  EXPECT_EQ(c.device_name, "  My Meter ");
  EXPECT_EQ(c.ssid, ssid);
}

TEST(ConfoDecoder, RefusesWhatPostgresCannotStore) {
  EXPECT_EQ(refusal(R"({"deviceName":"m\u0000x","ssid":"s"})"), "NUL in deviceName");
  EXPECT_EQ(refusal(R"({"deviceName":"m","ssid":"s","email":"\u0000"})"), "NUL in email");
  EXPECT_EQ(refusal("{\"deviceName\":\"m\xFF\",\"ssid\":\"s\"}"), "invalid UTF-8 in a string");
  EXPECT_EQ(refusal(R"({"deviceName":"\ud800","ssid":"s"})"), "invalid UTF-8 in a string");
}

TEST(ConfoDecoder, RefusesJsonThatIsNotAnObject) {
  for (const char* frame : {"[1,2]", "\"text\"", "42", "null", "true"}) {
    EXPECT_EQ(refusal(frame), "not a JSON object") << frame;
  }
}

TEST(ConfoDecoder, CallsBytesThatAreNotJsonUndecodable) {
  for (const char* frame : {R"({"deviceName":nan})", "{deviceName:1}", "\x16\x03\x01", "{"}) {
    auto r = decode(frame);
    EXPECT_EQ(r.outcome, confo_result::kind::undecodable) << frame;
    EXPECT_NE(r.reason.find("invalid JSON"), std::string::npos) << r.reason;
  }
}

// Found by tests/fuzz/confo_fuzz.cpp: the reason echoed the peer's raw
// bytes (DEL, NUL) into the log.
TEST(ConfoDecoder, KeepsReasonsShortPrintableAndOnOneLine) {
  using namespace std::string_literals;
  for (const auto& frame : {"{\"deviceN\x7f\x7f\x7f}\x7f?\x7fZie\0\0\x87\xba"s,
                            "{\"ssid\":\"a\nb\x01\"}"s, "{\"a\":[1,2,3,\x1b[2J]}"s}) {
    const auto r = decode(frame);
    EXPECT_EQ(r.outcome, confo_result::kind::undecodable) << frame;
    EXPECT_LT(r.reason.size(), 120u) << r.reason;
    for (char c : r.reason) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << r.reason;
    }
  }
}

}  // namespace
}  // namespace locomov::protocol
