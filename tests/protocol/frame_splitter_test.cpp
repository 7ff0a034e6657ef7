#include "protocol/frame_splitter.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "protocol/packet_decoder.hpp"

namespace locomov::protocol {
namespace {

using status = frame_splitter::status;

constexpr std::size_t default_max = 4096;

// Takes every complete frame currently available.
std::vector<std::string> drain(frame_splitter& splitter) {
  std::vector<std::string> frames;
  std::string frame;
  status st;
  while ((st = splitter.next(frame)) == status::frame) {
    frames.push_back(frame);
  }
  EXPECT_EQ(st, status::need_more);
  return frames;
}

std::vector<std::string> split_whole(std::string_view stream, std::size_t max = default_max) {
  frame_splitter splitter(max);
  splitter.feed(stream);
  return drain(splitter);
}

std::vector<std::string> split_in_two(std::string_view stream, std::size_t at) {
  frame_splitter splitter(default_max);
  splitter.feed(stream.substr(0, at));
  auto frames = drain(splitter);
  splitter.feed(stream.substr(at));
  for (auto& f : drain(splitter)) {
    frames.push_back(std::move(f));
  }
  return frames;
}

std::vector<std::string> split_bytewise(std::string_view stream) {
  frame_splitter splitter(default_max);
  std::vector<std::string> frames;
  for (char c : stream) {
    splitter.feed(std::string_view(&c, 1));
    for (auto& f : drain(splitter)) {
      frames.push_back(std::move(f));
    }
  }
  return frames;
}

using frames = std::vector<std::string>;

TEST(FrameSplitter, SplitsBackToBackObjects) {
  EXPECT_EQ(split_whole(R"({"a":1}{"b":2})"), (frames{R"({"a":1})", R"({"b":2})"}));
}

TEST(FrameSplitter, SplitsNewlineSeparatedObjects) {
  EXPECT_EQ(split_whole("{\"a\":1}\n{\"b\":2}\r\n"), (frames{R"({"a":1})", R"({"b":2})"}));
}

TEST(FrameSplitter, DropsWhitespaceAroundValues) {
  EXPECT_EQ(split_whole(" \t\r\n{\"a\" : [1, 2]}  \n\t [3] "),
            (frames{R"({"a" : [1, 2]})", "[3]"}));
}

TEST(FrameSplitter, IgnoresBracesAndQuotesInsideStrings) {
  const std::string value = R"({"a":"}]{[\"\\","b":{"c":"\"}"}})";
  EXPECT_EQ(split_whole(value + value), (frames{value, value}));
}

TEST(FrameSplitter, EndsTopLevelStringAtClosingQuote) {
  EXPECT_EQ(split_whole(R"("a\"b"{"x":1})"), (frames{R"("a\"b")", R"({"x":1})"}));
}

TEST(FrameSplitter, WaitsForDelimiterAfterTopLevelScalar) {
  frame_splitter splitter(default_max);
  std::string frame;
  splitter.feed("123");
  EXPECT_EQ(splitter.next(frame), status::need_more);
  EXPECT_EQ(splitter.buffered(), 3u);
  splitter.feed("45 ");
  ASSERT_EQ(splitter.next(frame), status::frame);
  EXPECT_EQ(frame, "12345");
  EXPECT_EQ(splitter.next(frame), status::need_more);
}

TEST(FrameSplitter, EndsTopLevelScalarAtStructuralByte) {
  EXPECT_EQ(split_whole(R"(true{"a":1}null"s"-1.5e3[2])"),
            (frames{"true", R"({"a":1})", "null", R"("s")", "-1.5e3", "[2]"}));
}

TEST(FrameSplitter, ReturnsStrayClosersAsFrames) {
  EXPECT_EQ(split_whole(R"(}]{"a":1},:)"), (frames{"}", "]", R"({"a":1})", ",", ":"}));
}

TEST(FrameSplitter, CutsHttpRequestIntoUndecodableFrames) {
  const auto got = split_whole("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front(), "G");
  EXPECT_EQ(decode_packet(got.front(), 0).outcome, decode_result::kind::undecodable);
}

TEST(FrameSplitter, GivesUpAtOnceOnAByteNoValueStartsWith) {
  // No delimiter follows: the decoder still gets a frame to refuse.
  for (const std::string& stream : {std::string("\0\0", 2), std::string("\x16\x03\x01garbage"),
                                   std::string("A"), std::string("\xff")}) {
    frame_splitter splitter(default_max);
    std::string frame;
    splitter.feed(stream);
    ASSERT_EQ(splitter.next(frame), status::frame) << stream;
    EXPECT_EQ(frame, stream.substr(0, 1));
    EXPECT_EQ(decode_packet(frame, 0).outcome, decode_result::kind::undecodable);
  }
}

TEST(FrameSplitter, WaitsInsideUnfinishedValue) {
  frame_splitter splitter(default_max);
  std::string frame;
  splitter.feed(R"({"a":{"b":")");
  EXPECT_EQ(splitter.next(frame), status::need_more);
  EXPECT_EQ(splitter.buffered(), 11u);
  splitter.feed(R"(}"}})");
  ASSERT_EQ(splitter.next(frame), status::frame);
  EXPECT_EQ(frame, R"({"a":{"b":"}"}})");
  EXPECT_EQ(splitter.buffered(), 0u);
}

// A stream the way meters and Go clients write it: values back to back, on
// lines, and padded with whitespace, with strings holding structural bytes.
const std::string mixed_stream =
    R"({"Id":7,"timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0})"
    R"({"id":8,"timestr":"2019-05-18T00:00:00Z","note":"{[\"}]"})"
    "\n"
    R"({"ID":9,"extra":{"nested":[1,2,{"x":"]"}]}})"
    "\r\n  \t"
    R"([1,2])"
    " 42 "
    R"("top\\")"
    "\n"
    R"({"Id":10,"voltage":null})"
    "\n";

const frames mixed_frames = {
    R"({"Id":7,"timestamp":1558137600,"status":true,"voltage":231.5,"freq":50.0})",
    R"({"id":8,"timestr":"2019-05-18T00:00:00Z","note":"{[\"}]"})",
    R"({"ID":9,"extra":{"nested":[1,2,{"x":"]"}]}})",
    "[1,2]",
    "42",
    R"("top\\")",
    R"({"Id":10,"voltage":null})",
};

TEST(FrameSplitter, FindsSameFramesInWholeStream) {
  EXPECT_EQ(split_whole(mixed_stream), mixed_frames);
}

TEST(FrameSplitter, FindsSameFramesForEverySplitPoint) {
  for (std::size_t at = 0; at <= mixed_stream.size(); ++at) {
    SCOPED_TRACE("split at byte " + std::to_string(at));
    EXPECT_EQ(split_in_two(mixed_stream, at), mixed_frames);
  }
}

TEST(FrameSplitter, FindsSameFramesFedOneByteAtATime) {
  EXPECT_EQ(split_bytewise(mixed_stream), mixed_frames);
}

TEST(FrameSplitter, DecodesEveryPacketOfSplitStream) {
  const std::int64_t now_us = 1558137600LL * 1'000'000;
  for (std::size_t at = 0; at <= mixed_stream.size(); ++at) {
    SCOPED_TRACE("split at byte " + std::to_string(at));
    const auto got = split_in_two(mixed_stream, at);
    ASSERT_EQ(got.size(), mixed_frames.size());
    std::vector<std::int32_t> ids;
    for (const auto& f : got) {
      const auto r = decode_packet(f, now_us);
      if (r.outcome == decode_result::kind::ok) {
        ids.push_back(r.value.id);
      }
    }
    EXPECT_EQ(ids, (std::vector<std::int32_t>{7, 8, 9, 10}));
  }
}

TEST(FrameSplitter, AcceptsValueOfExactlyMaxFrame) {
  EXPECT_EQ(split_whole(R"({"a":12})", 8), (frames{R"({"a":12})"}));
  EXPECT_EQ(split_whole("12345678 ", 8), (frames{"12345678"}));
  EXPECT_EQ(split_whole(R"("123456")", 8), (frames{R"("123456")"}));
}

TEST(FrameSplitter, ReportsObjectLongerThanMaxFrame) {
  frame_splitter splitter(8);
  std::string frame;
  splitter.feed(R"({"a":123})");
  EXPECT_EQ(splitter.next(frame), status::too_large);
}

TEST(FrameSplitter, ReportsUnfinishedValueOnceItPassesMaxFrame) {
  frame_splitter splitter(8);
  std::string frame;
  splitter.feed(R"({"a":)");
  EXPECT_EQ(splitter.next(frame), status::need_more);
  splitter.feed(R"("xxxxxxxxxxxxxxxxxx)");
  EXPECT_EQ(splitter.next(frame), status::too_large);
}

TEST(FrameSplitter, ReportsScalarLongerThanMaxFrame) {
  frame_splitter splitter(8);
  std::string frame;
  splitter.feed("123456789");
  EXPECT_EQ(splitter.next(frame), status::too_large);
}

TEST(FrameSplitter, StaysTooLargeAfterwards) {
  frame_splitter splitter(4);
  std::string frame;
  splitter.feed(R"({"abc":1} {})");
  EXPECT_EQ(splitter.next(frame), status::too_large);
  splitter.feed("{}");
  EXPECT_EQ(splitter.next(frame), status::too_large);
}

TEST(FrameSplitter, CountsMaxFrameFromFirstByteOfValue) {
  frame_splitter splitter(8);
  std::string frame;
  splitter.feed(R"({"a":1})");
  ASSERT_EQ(splitter.next(frame), status::frame);
  splitter.feed(std::string(100, ' '));
  EXPECT_EQ(splitter.next(frame), status::need_more);
  splitter.feed(R"({"b":22})");
  ASSERT_EQ(splitter.next(frame), status::frame);
  EXPECT_EQ(frame, R"({"b":22})");
}

TEST(FrameSplitter, DiscardsWhitespaceBetweenValues) {
  frame_splitter splitter(16);
  std::string frame;
  const std::string spaces(64 * 1024, '\n');
  for (int i = 0; i < 64; ++i) {
    splitter.feed(spaces);
    ASSERT_EQ(splitter.next(frame), status::need_more);
    ASSERT_EQ(splitter.buffered(), 0u);
  }
  splitter.feed("{}");
  ASSERT_EQ(splitter.next(frame), status::frame);
  EXPECT_EQ(frame, "{}");
}

TEST(FrameSplitter, ScansLargeValueFedByteByByteInLinearTime) {
  // Rescanning from the value's start on every read would take about 10^11
  // steps here and time the test out.
  constexpr std::size_t size = 512 * 1024;
  std::string value = R"({"a":")";
  value.append(size - value.size() - 2, 'x');
  value.append("\"}");
  frame_splitter splitter(size);
  std::string frame;
  for (std::size_t i = 0; i + 1 < value.size(); ++i) {
    splitter.feed(std::string_view(&value[i], 1));
    ASSERT_EQ(splitter.next(frame), status::need_more);
  }
  splitter.feed("}");
  ASSERT_EQ(splitter.next(frame), status::frame);
  EXPECT_EQ(frame.size(), size);
}

TEST(FrameSplitter, KeepsBufferSmallAcrossManyFrames) {
  frame_splitter splitter(64);
  std::string frame;
  const std::string packet = R"({"Id":7,"voltage":231.5})";
  for (int round = 0; round < 20'000; ++round) {
    splitter.feed(packet);
    splitter.feed(R"({"Id":)");
    ASSERT_EQ(splitter.next(frame), status::frame);
    ASSERT_EQ(splitter.next(frame), status::need_more);
    splitter.feed(R"(8})");
    ASSERT_EQ(splitter.next(frame), status::frame);
    ASSERT_EQ(frame, R"({"Id":8})");
    ASSERT_EQ(splitter.buffered(), 0u);
  }
}

}  // namespace
}  // namespace locomov::protocol
