#include "storage/spool.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace locomov::storage {
namespace {

namespace fs = std::filesystem;
using protocol::field;
using protocol::reading;

/// Bytes of one framed record of n rows, and of a segment's header; from
/// docs/spool.md.
constexpr std::uint64_t record_bytes(std::uint64_t rows) { return 8 + 4 + 87 * rows; }
constexpr std::uint64_t header_bytes = 16;

/// Bit-exact equality: reading's operator== calls -0 and 0 equal.
bool same_bits(const stored_packet& a, const stored_packet& b) {
  const reading& x = a.value;
  const reading& y = b.value;
  return a.pub_id == b.pub_id && a.quarantined == b.quarantined && x.id == y.id &&
         x.created_at_us == y.created_at_us && x.status == y.status && x.present == y.present &&
         x.has_lat == y.has_lat && x.has_lng == y.has_lng &&
         std::memcmp(x.values.data(), y.values.data(), sizeof x.values) == 0 &&
         std::memcmp(&x.lat, &y.lat, sizeof x.lat) == 0 &&
         std::memcmp(&x.lng, &y.lng, sizeof x.lng) == 0;
}

void expect_same(const std::vector<stored_packet>& got, const std::vector<stored_packet>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(same_bits(got[i], want[i])) << "row " << i;
  }
}

/// Packet number n: distinct, so order and loss show.
stored_packet numbered(std::int64_t n) {
  stored_packet p;
  p.value.id = 7;
  p.value.created_at_us = 1'558'137'600'000'000 + n;
  p.value.set(field::voltage, static_cast<float>(n));
  p.pub_id = 7;
  return p;
}

std::vector<stored_packet> numbered_batch(std::int64_t first, std::size_t count) {
  std::vector<stored_packet> out;
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(numbered(first + static_cast<std::int64_t>(i)));
  }
  return out;
}

class Spool : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/locomov-spool-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    opts_.dir = root_ / "spool";
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::vector<fs::path> segment_files() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(opts_.dir)) {
      if (e.path().extension() == ".seg") {
        out.push_back(e.path());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Everything in the spool, read in reads of `chunk` rows and consumed.
  static std::vector<stored_packet> drain(spool& s, std::size_t chunk = 1000) {
    std::vector<stored_packet> out;
    for (;;) {
      auto batch = s.read(chunk);
      if (batch.packets.empty()) {
        s.consume(batch.mark);
        return out;
      }
      out.insert(out.end(), batch.packets.begin(), batch.packets.end());
      s.consume(batch.mark);
    }
  }

  static void flip_byte(const fs::path& file, std::uint64_t offset) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x20));
  }

  fs::path root_;
  spool::options opts_;
};

TEST_F(Spool, RoundTripsEveryFieldBitExact) {
  stored_packet full;
  full.value.id = std::numeric_limits<std::int32_t>::max();
  full.value.created_at_us = 4'102'358'400'123'457;
  full.value.status = true;
  const float values[] = {-0.0f,   FLT_MIN, -FLT_MAX, 1e-45f,      0.1f,  16777217.0f, 230.5f,
                          -1.5e38f, 3.0f,   7.25f,    1.17549e-38f, 42.0f, FLT_MAX};
  for (std::size_t i = 0; i < protocol::reading_count; ++i) {
    full.value.set(static_cast<field>(i), values[i]);
  }
  full.value.has_lat = true;
  full.value.lat = -89.999999999999986;
  full.value.has_lng = true;
  full.value.lng = -0.0;
  full.pub_id = 12;  // resolved by hash: differs from the id the device sent
  full.quarantined = false;

  stored_packet sparse;
  sparse.value.id = 4242;
  sparse.value.created_at_us = -1;  // before 1970: any int64 survives
  sparse.value.set(field::frequency, 50.01f);
  sparse.value.set(field::ttl_rctv_enrg, 1e-40f);  // subnormal
  sparse.value.values[0] = 99.0f;  // a stale value behind an absent reading
  sparse.value.lat = 12.5;         // and behind an absent latitude
  sparse.quarantined = true;
  sparse.pub_id = 0;

  const std::vector<stored_packet> batch{full, sparse};
  spool s(opts_);
  ASSERT_TRUE(s.append(batch));
  EXPECT_EQ(s.rows(), 2u);
  EXPECT_EQ(s.bytes(), header_bytes + record_bytes(2));
  EXPECT_EQ(s.segments(), 1u);

  const auto got = s.read(10);
  expect_same(got.packets, batch);
  EXPECT_FALSE(got.packets[1].value.has(field::voltage));
  s.consume(got.mark);
  EXPECT_EQ(s.rows(), 0u);
  EXPECT_TRUE(s.read(10).packets.empty());
}

TEST_F(Spool, ReadReturnsWholeRecordsWithinMaxRows) {
  spool s(opts_);
  ASSERT_TRUE(s.append(numbered_batch(0, 2)));
  ASSERT_TRUE(s.append(numbered_batch(2, 3)));
  ASSERT_TRUE(s.append(numbered_batch(5, 4)));

  EXPECT_EQ(s.read(4).packets.size(), 2u);
  EXPECT_EQ(s.read(5).packets.size(), 5u);
  EXPECT_EQ(s.read(1).packets.size(), 2u);  // at least one record
  expect_same(s.read(100).packets, numbered_batch(0, 9));
}

TEST_F(Spool, ReadingWithoutConsumingReturnsTheSameRows) {
  spool s(opts_);
  ASSERT_TRUE(s.append(numbered_batch(0, 3)));
  const auto first = s.read(10);
  const auto again = s.read(10);
  expect_same(again.packets, first.packets);
  EXPECT_EQ(s.rows(), 3u);
}

TEST_F(Spool, ConsumeNeedsTheMarkOfTheLatestRead) {
  spool s(opts_);
  ASSERT_TRUE(s.append(numbered_batch(0, 1)));
  ASSERT_TRUE(s.append(numbered_batch(1, 1)));
  const auto first = s.read(1);
  s.consume(first.mark);
  EXPECT_THROW(s.consume(first.mark), std::logic_error);
  expect_same(drain(s), numbered_batch(1, 1));
}

TEST_F(Spool, KeepsOrderAcrossSegmentsAndRemovesConsumedOnes) {
  opts_.segment_bytes = header_bytes + 5 * record_bytes(1);
  spool s(opts_);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(s.append(numbered_batch(i, 1)));
  }
  EXPECT_EQ(s.segments(), 10u);
  EXPECT_EQ(segment_files().size(), 10u);
  EXPECT_EQ(s.bytes(), 10 * header_bytes + 50 * record_bytes(1));

  std::vector<stored_packet> got;
  const auto first = s.read(7);
  got = first.packets;
  s.consume(first.mark);
  EXPECT_EQ(s.segments(), 9u);  // the first segment's 5 rows are consumed
  EXPECT_EQ(segment_files().size(), 9u);
  EXPECT_EQ(s.rows(), 43u);

  const auto rest = drain(s, 7);
  got.insert(got.end(), rest.begin(), rest.end());
  expect_same(got, numbered_batch(0, 50));
  EXPECT_EQ(s.rows(), 0u);
  EXPECT_EQ(s.bytes(), 0u);
  EXPECT_EQ(s.segments(), 0u);
  EXPECT_TRUE(segment_files().empty());
}

TEST_F(Spool, AppendsAfterDrainingStartAFreshSegment) {
  spool s(opts_);
  ASSERT_TRUE(s.append(numbered_batch(0, 2)));
  drain(s);
  EXPECT_TRUE(segment_files().empty());
  ASSERT_TRUE(s.append(numbered_batch(2, 2)));
  EXPECT_EQ(segment_files().size(), 1u);
  expect_same(drain(s), numbered_batch(2, 2));
}

TEST_F(Spool, ReopenKeepsEverything) {
  opts_.segment_bytes = header_bytes + 3 * record_bytes(2);
  {
    spool s(opts_);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(s.append(numbered_batch(2 * i, 2)));
    }
  }
  spool s(opts_);
  EXPECT_EQ(s.rows(), 20u);
  EXPECT_EQ(s.segments(), 4u);
  EXPECT_EQ(s.bytes(), 4 * header_bytes + 10 * record_bytes(2));
  ASSERT_TRUE(s.append(numbered_batch(20, 2)));
  EXPECT_EQ(s.segments(), 5u);  // appends go to a new segment after a reopen
  expect_same(drain(s), numbered_batch(0, 22));
}

TEST_F(Spool, ReopenRedeliversConsumedRowsOfAKeptSegment) {
  {
    spool s(opts_);
    ASSERT_TRUE(s.append(numbered_batch(0, 1)));
    ASSERT_TRUE(s.append(numbered_batch(1, 1)));
    s.consume(s.read(1).mark);
    EXPECT_EQ(s.rows(), 1u);
  }
  spool s(opts_);
  expect_same(drain(s), numbered_batch(0, 2));
}

TEST_F(Spool, FileTruncatedMidRecordIsCutBackToTheLastGoodRecord) {
  {
    spool s(opts_);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(s.append(numbered_batch(3 * i, 3)));
    }
  }
  const auto file = segment_files().at(0);
  const std::uint64_t two_records = header_bytes + 2 * record_bytes(3);
  fs::resize_file(file, two_records + 50);

  spool s(opts_);
  EXPECT_EQ(s.rows(), 6u);
  EXPECT_EQ(s.bytes(), two_records);
  EXPECT_EQ(fs::file_size(file), two_records);
  ASSERT_TRUE(s.append(numbered_batch(100, 1)));
  auto want = numbered_batch(0, 6);
  want.push_back(numbered(100));
  expect_same(drain(s), want);
}

TEST_F(Spool, TornRecordHeaderIsCut) {
  {
    spool s(opts_);
    ASSERT_TRUE(s.append(numbered_batch(0, 1)));
    ASSERT_TRUE(s.append(numbered_batch(1, 1)));
  }
  const auto file = segment_files().at(0);
  fs::resize_file(file, header_bytes + record_bytes(1) + 3);
  spool s(opts_);
  expect_same(drain(s), numbered_batch(0, 1));
}

TEST_F(Spool, FlippedByteIsCutWithTheRecordsAfterIt) {
  {
    spool s(opts_);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(s.append(numbered_batch(2 * i, 2)));
    }
  }
  const auto file = segment_files().at(0);
  flip_byte(file, header_bytes + record_bytes(2) + 40);  // inside the second record's rows

  spool s(opts_);
  EXPECT_EQ(s.rows(), 2u);
  EXPECT_EQ(fs::file_size(file), header_bytes + record_bytes(2));
  expect_same(drain(s), numbered_batch(0, 2));
}

TEST_F(Spool, FlippedLengthByteIsCaught) {
  {
    spool s(opts_);
    ASSERT_TRUE(s.append(numbered_batch(0, 2)));
    ASSERT_TRUE(s.append(numbered_batch(2, 2)));
  }
  flip_byte(segment_files().at(0), header_bytes + record_bytes(2));  // second record's length
  spool s(opts_);
  expect_same(drain(s), numbered_batch(0, 2));
}

TEST_F(Spool, CorruptionInAnEarlierSegmentKeepsTheOtherSegments) {
  opts_.segment_bytes = header_bytes + 2 * record_bytes(1);
  {
    spool s(opts_);
    for (int i = 0; i < 6; ++i) {
      ASSERT_TRUE(s.append(numbered_batch(i, 1)));
    }
  }
  ASSERT_EQ(segment_files().size(), 3u);
  flip_byte(segment_files().at(0), header_bytes + record_bytes(1) + 20);

  spool s(opts_);
  EXPECT_EQ(s.rows(), 5u);
  auto want = numbered_batch(0, 1);
  const auto later = numbered_batch(2, 4);
  want.insert(want.end(), later.begin(), later.end());
  expect_same(drain(s), want);
}

TEST_F(Spool, CorruptionFoundWhileReadingIsCut) {
  spool s(opts_);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.append(numbered_batch(i, 1)));
  }
  flip_byte(segment_files().at(0), header_bytes + record_bytes(1) + 30);

  expect_same(s.read(10).packets, numbered_batch(0, 1));
  EXPECT_EQ(s.rows(), 1u);
  EXPECT_EQ(s.bytes(), header_bytes + record_bytes(1));
  ASSERT_TRUE(s.append(numbered_batch(10, 1)));
  auto want = numbered_batch(0, 1);
  want.push_back(numbered(10));
  expect_same(drain(s), want);
}

TEST_F(Spool, SegmentWithAnIncompleteHeaderIsRemoved) {
  {
    spool s(opts_);
    ASSERT_TRUE(s.append(numbered_batch(0, 1)));
  }
  std::ofstream(opts_.dir / "0000000000000002.seg", std::ios::binary) << "LMV";
  spool s(opts_);
  EXPECT_EQ(s.segments(), 1u);
  EXPECT_EQ(segment_files().size(), 1u);
  ASSERT_TRUE(s.append(numbered_batch(1, 1)));
  expect_same(drain(s), numbered_batch(0, 2));
}

TEST_F(Spool, RefusesASegmentOfAnotherFormat) {
  fs::create_directories(opts_.dir);
  std::ofstream(opts_.dir / "0000000000000001.seg", std::ios::binary)
      << "NOTASPOOLSEGMENT and more bytes";
  EXPECT_THROW(spool{opts_}, std::runtime_error);
}

TEST_F(Spool, IgnoresOtherFilesInTheFolder) {
  fs::create_directories(opts_.dir);
  std::ofstream(opts_.dir / "notes.txt") << "kept";
  spool s(opts_);
  EXPECT_EQ(s.segments(), 0u);
  EXPECT_TRUE(fs::exists(opts_.dir / "notes.txt"));
}

TEST_F(Spool, ByteBoundRefusesWithoutWritingAndNothingOnceDrained) {
  opts_.max_bytes = header_bytes + 3 * record_bytes(2);
  spool s(opts_);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.append(numbered_batch(2 * i, 2)));
  }
  const auto bytes = s.bytes();
  EXPECT_FALSE(s.append(numbered_batch(6, 1)));
  EXPECT_EQ(s.bytes(), bytes);
  EXPECT_EQ(s.rows(), 6u);
  EXPECT_EQ(fs::file_size(segment_files().at(0)), bytes);

  expect_same(drain(s), numbered_batch(0, 6));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(s.append(numbered_batch(10 + 2 * i, 2)));
  }
  EXPECT_FALSE(s.append(numbered_batch(20, 1)));
}

TEST_F(Spool, BatchLargerThanTheBoundIsRefused) {
  opts_.max_bytes = 1000;
  spool s(opts_);
  EXPECT_FALSE(s.append(numbered_batch(0, 20)));
  EXPECT_EQ(s.segments(), 0u);
  EXPECT_TRUE(s.append(numbered_batch(0, 2)));
}

TEST_F(Spool, BatchLargerThanASegmentGetsOneOfItsOwn) {
  opts_.segment_bytes = header_bytes + record_bytes(2);
  spool s(opts_);
  ASSERT_TRUE(s.append(numbered_batch(0, 1)));
  ASSERT_TRUE(s.append(numbered_batch(1, 5)));
  ASSERT_TRUE(s.append(numbered_batch(6, 1)));
  EXPECT_EQ(s.segments(), 3u);
  expect_same(drain(s, 1), numbered_batch(0, 7));
}

TEST_F(Spool, EmptyBatchWritesNothing) {
  spool s(opts_);
  EXPECT_TRUE(s.append({}));
  EXPECT_EQ(s.segments(), 0u);
  EXPECT_TRUE(s.read(10).packets.empty());
}

TEST_F(Spool, SecondSpoolOnTheSameFolderIsRefused) {
  spool s(opts_);
  EXPECT_THROW(spool{opts_}, std::system_error);
}

TEST_F(Spool, ConcurrentAppendsAllArriveWholeAndInOrderPerThread) {
  opts_.segment_bytes = 64 * 1024;
  constexpr int threads = 4;
  constexpr int batches = 150;
  {
    spool s(opts_);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&s, t] {
        for (int b = 0; b < batches; ++b) {
          // Thread in id, batch in pub_id, row in created_at.
          std::vector<stored_packet> batch(static_cast<std::size_t>(1 + b % 5));
          for (std::size_t r = 0; r < batch.size(); ++r) {
            batch[r].value.id = t;
            batch[r].pub_id = b;
            batch[r].value.created_at_us = static_cast<std::int64_t>(r);
            batch[r].value.set(field::voltage, static_cast<float>(batch.size()));
          }
          ASSERT_TRUE(s.append(batch));
        }
      });
    }
    for (auto& w : workers) {
      w.join();
    }
  }

  spool s(opts_);  // reopened: every record on disk is whole
  const auto got = drain(s, 64);
  std::map<int, int> next_batch;
  std::size_t i = 0;
  while (i < got.size()) {
    const int t = got[i].value.id;
    const int b = got[i].pub_id;
    const auto size = static_cast<std::size_t>(got[i].value.get(field::voltage));
    ASSERT_EQ(b, next_batch[t]) << "thread " << t;
    ASSERT_EQ(size, static_cast<std::size_t>(1 + b % 5));
    for (std::size_t r = 0; r < size; ++r, ++i) {
      ASSERT_LT(i, got.size());
      ASSERT_EQ(got[i].value.id, t);
      ASSERT_EQ(got[i].pub_id, b);
      ASSERT_EQ(got[i].value.created_at_us, static_cast<std::int64_t>(r));
    }
    ++next_batch[t];
  }
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(next_batch[t], batches);
  }
}

}  // namespace
}  // namespace locomov::storage
