// The capture format: what a line holds, and how files are read back.

#include <gtest/gtest.h>

#include <fstream>

#include "actors/replay.hpp"
#include "capture/record.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::capture {
namespace {

record sample(event ev, std::string data = {}) {
  record r;
  r.t_us = 1764806400123456;
  r.listener = "packet";
  r.conn = 42;
  r.peer = "[::1]:5555";
  r.ev = ev;
  r.data = std::move(data);
  return r;
}

record round_trip(const record& r) {
  std::string error;
  auto back = parse_line(to_line(r), error);
  EXPECT_TRUE(back.has_value()) << error << " in " << to_line(r);
  return back.value_or(record{});
}

TEST(CaptureRecord, TextIsReadableJson) {
  const auto line = to_line(sample(event::in, "{\"id\":1}\n"));
  EXPECT_EQ(line,
            R"({"t":"2025-12-04T00:00:00.123456Z","listener":"packet","conn":42,)"
            R"("peer":"[::1]:5555","ev":"in","data":"{\"id\":1}\n"})");
}

TEST(CaptureRecord, EveryEventComesBackAsItWas) {
  for (auto ev : {event::open, event::in, event::out, event::shut, event::close}) {
    const auto r = sample(ev, ev == event::in || ev == event::out ? "Thank you.\n" : "");
    const auto back = round_trip(r);
    EXPECT_EQ(back.t_us, r.t_us);
    EXPECT_EQ(back.listener, r.listener);
    EXPECT_EQ(back.conn, r.conn);
    EXPECT_EQ(back.peer, r.peer);
    EXPECT_EQ(back.ev, r.ev);
    EXPECT_EQ(back.data, r.data);
  }
  auto closed = sample(event::close);
  closed.by = closer::locomov;
  EXPECT_EQ(round_trip(closed).by, closer::locomov);
}

TEST(CaptureRecord, BytesThatAreNotUtf8GoInBase64) {
  for (std::string bytes : {std::string("\x16\x03\x01\x00\xff", 5), std::string("\xc3", 1),
                            std::string("ab\0c", 4), std::string("\xff\xfe", 2)}) {
    const auto r = sample(event::in, bytes);
    const auto line = to_line(r);
    if (bytes.find('\0') == std::string::npos) {
      EXPECT_NE(line.find("\"b64\":"), std::string::npos) << line;
    }
    EXPECT_EQ(round_trip(r).data, bytes);
  }
}

TEST(CaptureRecord, BrokenLinesSayWhatIsWrong) {
  std::string error;
  EXPECT_FALSE(parse_line("{\"t\":", error));
  EXPECT_NE(error.find("not JSON"), std::string::npos);
  // Found by the capture fuzzer: nlohmann throws out_of_range, not
  // parse_error, for a number past a double.
  EXPECT_FALSE(parse_line(R"({"t":"2026-12-04T00:00:00Z","conn":1e999,"ev":"open"})", error));
  EXPECT_NE(error.find("not JSON"), std::string::npos);
  EXPECT_FALSE(parse_line(R"({"t":"yesterday","conn":1,"ev":"open"})", error));
  EXPECT_NE(error.find("RFC 3339"), std::string::npos);
  EXPECT_FALSE(parse_line(R"({"t":"2026-12-04T00:00:00Z","conn":1,"ev":"wave"})", error));
  EXPECT_NE(error.find("\"ev\""), std::string::npos);
  EXPECT_FALSE(parse_line(R"({"t":"2026-12-04T00:00:00Z","conn":1,"ev":"in"})", error));
  EXPECT_NE(error.find("data"), std::string::npos);
}

TEST(CaptureFiles, ReadInTimeOrderWhateverTheFileOrder) {
  test::scratch_dir dir;
  auto write = [&](const char* name, std::vector<record> records) {
    std::ofstream out(dir.path() / name);
    for (const auto& r : records) {
      out << to_line(r) << "\n";
    }
  };
  auto at = [](record r, std::int64_t t) {
    r.t_us = t;
    return r;
  };
  // The rotated file holds the older records.
  write("capture.1.jsonl", {at(sample(event::open), 1), at(sample(event::in, "a"), 2)});
  write("capture.jsonl", {at(sample(event::out, "b\n"), 3), at(sample(event::close), 4)});
  const auto all = read_files({dir.path() / "capture.jsonl", dir.path() / "capture.1.jsonl"});
  ASSERT_EQ(all.size(), 4u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].t_us, static_cast<std::int64_t>(i + 1));
  }
  write("broken.jsonl", {sample(event::open)});
  std::ofstream(dir.path() / "broken.jsonl", std::ios::app) << "not a record\n";
  try {
    read_files({dir.path() / "broken.jsonl"});
    FAIL() << "a broken line was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(ReplayRewrite, IdsAndTimesChangeInAnySpellingAndNothingElse) {
  actors::replay_settings s;
  s.id_map = {{7, 70}};
  s.id_offset = 1;
  s.time_shift_us = 3600 * 1'000'000LL;
  EXPECT_EQ(actors::rewrite_frame(R"({"Id":7,"timestamp":1764806400,"voltage":230.5})", s),
            R"({"Id":71,"timestamp":1764810000,"voltage":230.5})");
  EXPECT_EQ(actors::rewrite_frame(R"({"ID":3,"TimeStr":"2025-12-04T01:00:00Z"})", s),
            R"({"ID":4,"TimeStr":"2025-12-04T02:00:00.000000Z"})");
  // Not a packet it can read: sent as it was, for the decoder to answer.
  EXPECT_EQ(actors::rewrite_frame(R"({"id":"seven"})", s), R"({"id":"seven"})");
  EXPECT_EQ(actors::rewrite_frame("{\"id\":", s), "{\"id\":");
  EXPECT_EQ(actors::rewrite_frame("[1,2]", s), "[1,2]");
  EXPECT_EQ(actors::rewrite_frame(R"({"id":1,"voltage":1e999})", s), R"({"id":1,"voltage":1e999})");
}

}  // namespace
}  // namespace locomov::capture
