// Imports: TCP streams put back together from a pcap, and packet files.

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "capture/import.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::capture {
namespace {

/// Writes raw IPv4 TCP segments (DLT_RAW) as libpcap would record them.
class pcap_writer {
 public:
  explicit pcap_writer(const std::filesystem::path& file)
      : pcap_(pcap_open_dead(DLT_RAW, 65535)), dump_(pcap_dump_open(pcap_, file.c_str())) {}
  ~pcap_writer() {
    pcap_dump_close(dump_);
    pcap_close(pcap_);
  }

  /// A segment from 10.0.0.7:40000 to the server's port 38982 (or back).
  void segment(bool from_peer, std::uint32_t seq, unsigned char flags, const std::string& data) {
    std::string p(40 + data.size(), '\0');
    auto* b = reinterpret_cast<unsigned char*>(p.data());
    b[0] = 0x45;
    b[2] = static_cast<unsigned char>(p.size() >> 8);
    b[3] = static_cast<unsigned char>(p.size());
    b[8] = 64;
    b[9] = 6;
    const unsigned char peer[4] = {10, 0, 0, 7};
    const unsigned char server[4] = {10, 0, 0, 1};
    std::memcpy(b + 12, from_peer ? peer : server, 4);
    std::memcpy(b + 16, from_peer ? server : peer, 4);
    const std::uint16_t sport = from_peer ? 40000 : 38982;
    const std::uint16_t dport = from_peer ? 38982 : 40000;
    b[20] = static_cast<unsigned char>(sport >> 8);
    b[21] = static_cast<unsigned char>(sport);
    b[22] = static_cast<unsigned char>(dport >> 8);
    b[23] = static_cast<unsigned char>(dport);
    for (int i = 0; i < 4; ++i) {
      b[24 + i] = static_cast<unsigned char>(seq >> (24 - 8 * i));
    }
    b[32] = 5 << 4;
    b[33] = flags;
    std::memcpy(b + 40, data.data(), data.size());
    pcap_pkthdr h{};
    h.ts.tv_sec = 1764806400;
    h.ts.tv_usec = ++usec_;
    h.caplen = h.len = static_cast<bpf_u_int32>(p.size());
    pcap_dump(reinterpret_cast<u_char*>(dump_), &h, b);
  }

 private:
  pcap_t* pcap_;
  pcap_dumper_t* dump_;
  long usec_ = 0;
};

constexpr unsigned char syn = 0x02, ack = 0x10, fin = 0x01, psh = 0x08;

TEST(ImportPcap, StreamsComeBackInOrderWithoutRetransmissions) {
  test::scratch_dir dir;
  const auto file = dir.path() / "t.pcap";
  {
    pcap_writer w(file);
    w.segment(true, 999, syn, "");
    w.segment(false, 4999, syn | ack, "");
    w.segment(true, 1000, psh | ack, "{\"id\":1,");
    w.segment(true, 1015, psh | ack, "{\"id\":2}\n");        // ahead of a gap
    w.segment(true, 1000, psh | ack, "{\"id\":1,");           // retransmitted
    w.segment(true, 1008, psh | ack, "\"x\":1}\n");           // fills the gap
    w.segment(false, 5000, psh | ack, "Thank you.\n");
    w.segment(true, 1024, fin | ack, "");
  }
  const auto result = import_pcap(file, 38982);
  ASSERT_EQ(result.connections, 1u);
  std::string in;
  std::string out;
  std::vector<event> events;
  for (const auto& r : result.records) {
    events.push_back(r.ev);
    EXPECT_EQ(r.peer, "10.0.0.7:40000");
    EXPECT_EQ(r.listener, "plain");
    (r.ev == event::in ? in : out) += r.data;
  }
  EXPECT_EQ(in, "{\"id\":1,\"x\":1}\n{\"id\":2}\n");
  EXPECT_EQ(out, "Thank you.\n");
  EXPECT_EQ(events.front(), event::open);
  EXPECT_EQ(events.back(), event::close);
  EXPECT_EQ(result.records.back().by, closer::peer);
  for (std::size_t i = 1; i < result.records.size(); ++i) {
    EXPECT_LT(result.records[i - 1].t_us, result.records[i].t_us);
  }
}

TEST(ImportPcap, AFileThatIsNotAPcapSaysSo) {
  test::scratch_dir dir;
  std::ofstream(dir.path() / "x.pcap") << "not a capture";
  EXPECT_THROW(import_pcap(dir.path() / "x.pcap", 38982), std::runtime_error);
}

TEST(ImportPackets, OneConnectionOrOneEach) {
  std::istringstream one("{\"id\":1}\n{\"id\":2}{\"id\":3}");
  const auto together = import_packets(one, false, 1'000'000);
  EXPECT_EQ(together.connections, 1u);
  std::istringstream each("{\"id\":1}\n{\"id\":2}{\"id\":3} {\"id\":");
  const auto apart = import_packets(each, true, 1'000'000);
  EXPECT_EQ(apart.connections, 3u);
  ASSERT_EQ(apart.warnings.size(), 1u);  // the cut-off value at the end
  std::size_t reads = 0;
  for (const auto& r : apart.records) {
    reads += r.ev == event::in ? 1 : 0;
  }
  EXPECT_EQ(reads, 3u);
  EXPECT_EQ(apart.records.front().t_us, 1'000'000);
}

}  // namespace
}  // namespace locomov::capture
