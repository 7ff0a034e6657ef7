#include "capture/import.hpp"

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <sys/socket.h>

#include <cstring>
#include <istream>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>

#include <fmt/format.h>

#include "protocol/frame_splitter.hpp"

namespace locomov::capture {
namespace {

constexpr std::size_t warnings_kept = 10;

std::uint16_t be16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t be32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}

/// Where the IP header starts in a frame of link type `link`, and which IP
/// version it is (4 or 6); 0 when the frame carries no IP.
struct ip_start {
  std::size_t offset = 0;
  int version = 0;
};

ip_start find_ip(int link, const unsigned char* p, std::size_t len) {
  auto by_ethertype = [](std::uint16_t type, std::size_t at) {
    return ip_start{at, type == 0x0800 ? 4 : type == 0x86dd ? 6 : 0};
  };
  switch (link) {
    case DLT_EN10MB: {
      if (len < 14) {
        return {};
      }
      std::size_t at = 12;
      auto type = be16(p + at);
      while ((type == 0x8100 || type == 0x88a8) && len >= at + 6) {  // VLAN tags
        at += 4;
        type = be16(p + at);
      }
      return by_ethertype(type, at + 2);
    }
    case DLT_LINUX_SLL:
      return len < 16 ? ip_start{} : by_ethertype(be16(p + 14), 16);
    case DLT_LINUX_SLL2:
      return len < 20 ? ip_start{} : by_ethertype(be16(p), 20);
    case DLT_NULL:
    case DLT_LOOP: {
      if (len < 4) {
        return {};
      }
      // The family is in the capturing host's byte order (DLT_NULL) or big
      // endian (DLT_LOOP): both small numbers, so look at either end.
      const std::uint32_t family = p[0] != 0 ? p[0] : p[3];
      return {4, family == AF_INET ? 4 : (family == 10 || family == 24 || family == 28 || family == 30) ? 6 : 0};
    }
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
      return len < 1 ? ip_start{} : ip_start{0, p[0] >> 4};
    default:
      return {};
  }
}

struct segment {
  std::string src;  ///< "address:port"
  std::string dst;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::uint32_t seq = 0;
  bool syn = false, ack = false, fin = false, rst = false;
  std::string payload;
};

std::string endpoint(int version, const unsigned char* addr, std::uint16_t port) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(version == 4 ? AF_INET : AF_INET6, addr, text, sizeof text);
  return version == 4 ? fmt::format("{}:{}", text, port) : fmt::format("[{}]:{}", text, port);
}

/// The TCP segment in an IP packet, if it is one.
bool parse_tcp(const unsigned char* p, std::size_t len, int version, segment& s) {
  const unsigned char* src = nullptr;
  const unsigned char* dst = nullptr;
  std::size_t header = 0;
  std::size_t total = len;
  if (version == 4) {
    if (len < 20 || p[9] != 6) {
      return false;
    }
    header = static_cast<std::size_t>(p[0] & 0x0f) * 4;
    total = std::min<std::size_t>(len, be16(p + 2));
    if ((be16(p + 6) & 0x1fff) != 0) {  // a later fragment: no TCP header
      return false;
    }
    src = p + 12;
    dst = p + 16;
  } else if (version == 6) {
    if (len < 40 || p[6] != 6) {  // extension headers are not followed
      return false;
    }
    header = 40;
    total = std::min<std::size_t>(len, 40 + static_cast<std::size_t>(be16(p + 4)));
    src = p + 8;
    dst = p + 24;
  } else {
    return false;
  }
  if (total < header + 20) {
    return false;
  }
  const unsigned char* t = p + header;
  const std::size_t tcp_header = static_cast<std::size_t>(t[12] >> 4) * 4;
  if (tcp_header < 20 || total < header + tcp_header) {
    return false;
  }
  s.sport = be16(t);
  s.dport = be16(t + 2);
  s.seq = be32(t + 4);
  const unsigned char flags = t[13];
  s.fin = (flags & 0x01) != 0;
  s.syn = (flags & 0x02) != 0;
  s.rst = (flags & 0x04) != 0;
  s.ack = (flags & 0x10) != 0;
  s.src = endpoint(version, src, s.sport);
  s.dst = endpoint(version, dst, s.dport);
  s.payload.assign(reinterpret_cast<const char*>(t + tcp_header), total - header - tcp_header);
  return true;
}

/// One direction of a TCP stream, put back in sequence order.
struct direction {
  bool started = false;
  std::uint32_t next = 0;
  std::map<std::uint32_t, std::string> early;  // segments past a gap, by seq

  /// The bytes that are now in order, after `s` arrived.
  std::string take(const segment& s) {
    if (!started) {
      started = true;
      next = s.seq + (s.syn ? 1 : 0);
    }
    std::string out;
    std::uint32_t seq = s.seq + (s.syn ? 1 : 0);
    std::string data = s.payload;
    auto behind = static_cast<std::int32_t>(next - seq);
    if (behind > 0) {  // a retransmission, wholly or in part
      data.erase(0, std::min<std::size_t>(data.size(), static_cast<std::size_t>(behind)));
      seq = next;
    }
    if (data.empty()) {
      return out;
    }
    if (seq != next) {
      early.emplace(seq, std::move(data));
      return out;
    }
    out = std::move(data);
    next += static_cast<std::uint32_t>(out.size());
    for (auto i = early.find(next); i != early.end(); i = early.find(next)) {
      out += i->second;
      next += static_cast<std::uint32_t>(i->second.size());
      early.erase(i);
    }
    return out;
  }
};

struct flow {
  std::uint64_t conn = 0;
  std::string peer;
  direction in;
  direction out;
  bool closed = false;
};

class pcap_reader {
 public:
  pcap_reader(std::uint16_t port, std::string listener) : port_(port), listener_(std::move(listener)) {}

  void packet(std::int64_t t_us, const segment& s) {
    const bool from_peer = s.dport == port_;
    if (!from_peer && s.sport != port_) {
      ++result_.frames_skipped;
      return;
    }
    const auto& peer = from_peer ? s.src : s.dst;
    auto& f = flows_[peer];
    if (from_peer && s.syn && !s.ack) {
      if (f.conn != 0 && !f.closed) {
        add(t_us, f, event::close, {}, closer::peer);
      }
      f = flow{};
    }
    if (f.conn == 0) {
      f.conn = ++result_.connections;
      f.peer = peer;
      add(t_us, f, event::open);
      if (!s.syn) {
        warn(fmt::format("conn {} ({}): no SYN in the file, taken from its first segment",
                         f.conn, peer));
      }
    }
    if (f.closed) {
      return;
    }
    auto bytes = (from_peer ? f.in : f.out).take(s);
    if (!bytes.empty()) {
      add(t_us, f, from_peer ? event::in : event::out, std::move(bytes));
    }
    if (s.fin || s.rst) {
      auto& d = from_peer ? f.in : f.out;
      if (!d.early.empty()) {
        warn(fmt::format("conn {} ({}): {} bytes after a gap were never filled", f.conn, peer,
                         d.early.begin()->second.size()));
      }
      add(t_us, f, event::close, {}, from_peer ? closer::peer : closer::locomov);
      f.closed = true;
    }
  }

  imported result() && { return std::move(result_); }

 private:
  void add(std::int64_t t_us, const flow& f, event ev, std::string data = {},
           closer by = closer::peer) {
    record r;
    // Strictly increasing, so that time order is file order.
    r.t_us = last_t_ = std::max(t_us, last_t_ + 1);
    r.listener = listener_;
    r.conn = f.conn;
    r.peer = f.peer;
    r.ev = ev;
    r.data = std::move(data);
    r.by = by;
    result_.records.push_back(std::move(r));
  }

  void warn(std::string text) {
    if (result_.warnings.size() < warnings_kept) {
      result_.warnings.push_back(std::move(text));
    }
  }

  std::uint16_t port_;
  std::string listener_;
  std::map<std::string, flow> flows_;
  std::int64_t last_t_ = 0;
  imported result_;
};

struct pcap_closer {
  void operator()(pcap_t* p) const { pcap_close(p); }
};

}  // namespace

namespace {

imported read_pcap(pcap_t* pcap, std::uint16_t port, const std::string& listener,
                   const std::string& name) {
  const int link = pcap_datalink(pcap);
  pcap_reader reader(port, listener);
  pcap_pkthdr* header = nullptr;
  const unsigned char* data = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(pcap, &header, &data)) == 1) {
    const auto ip = find_ip(link, data, header->caplen);
    segment s;
    const std::int64_t t_us =
        static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000 + header->ts.tv_usec;
    if (ip.version == 0 || ip.offset >= header->caplen ||
        !parse_tcp(data + ip.offset, header->caplen - ip.offset, ip.version, s)) {
      continue;
    }
    reader.packet(t_us, s);
  }
  if (rc == PCAP_ERROR) {
    throw std::runtime_error(name + ": " + pcap_geterr(pcap));
  }
  return std::move(reader).result();
}

}  // namespace

imported import_pcap(const std::filesystem::path& file, std::uint16_t port,
                     const std::string& listener) {
  char error[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, pcap_closer> pcap(
      pcap_open_offline_with_tstamp_precision(file.c_str(), PCAP_TSTAMP_PRECISION_MICRO, error));
  if (!pcap) {
    throw std::runtime_error(file.string() + ": " + error);
  }
  return read_pcap(pcap.get(), port, listener, file.string());
}

imported import_pcap(std::FILE* stream, std::uint16_t port, const std::string& listener) {
  char error[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, pcap_closer> pcap(
      pcap_fopen_offline_with_tstamp_precision(stream, PCAP_TSTAMP_PRECISION_MICRO, error));
  if (!pcap) {
    std::fclose(stream);
    throw std::runtime_error(std::string("pcap stream: ") + error);
  }
  return read_pcap(pcap.get(), port, listener, "pcap stream");
}

imported import_packets(std::istream& in, bool one_per_connection, std::int64_t start_us,
                        const std::string& listener) {
  imported result;
  std::int64_t t = start_us;
  auto add = [&](std::uint64_t conn, event ev, std::string data = {}) {
    record r;
    r.by = closer::locomov;
    r.t_us = t++;
    r.listener = listener;
    r.conn = conn;
    r.peer = "imported";
    r.ev = ev;
    r.data = std::move(data);
    result.records.push_back(std::move(r));
  };
  // The sender is done, as a device sending close_notify: locomov answers
  // and closes.
  auto end = [&](std::uint64_t c) {
    add(c, event::shut);
    add(c, event::close);
  };
  protocol::frame_splitter splitter(std::size_t{1} << 30);
  std::string chunk(64 << 10, '\0');
  std::string frame;
  std::uint64_t conn = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    splitter.feed(std::string_view(chunk.data(), static_cast<std::size_t>(in.gcount())));
    while (splitter.next(frame) == protocol::frame_splitter::status::frame) {
      if (conn == 0 || one_per_connection) {
        if (conn != 0) {
          end(conn);
        }
        conn = ++result.connections;
        add(conn, event::open);
      }
      add(conn, event::in, frame + "\n");
      t += 999;  // 1 ms between reads, so --speed 1 paces them
    }
  }
  if (splitter.buffered() > 0) {
    result.warnings.push_back(fmt::format("{} bytes at the end are not a whole JSON value",
                                          splitter.buffered()));
  }
  if (conn != 0) {
    end(conn);
  }
  return result;
}

void write_records(const std::vector<record>& records, std::ostream& out) {
  for (const auto& r : records) {
    out << to_line(r) << '\n';
  }
}

}  // namespace locomov::capture
