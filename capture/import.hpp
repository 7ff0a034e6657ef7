#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "capture/record.hpp"

namespace locomov::capture {

/// A capture made from something other than locomov's recorder.
struct imported {
  std::vector<record> records;
  std::size_t connections = 0;
  std::size_t frames_skipped = 0;  ///< pcap: not TCP to or from the port
  std::vector<std::string> warnings;  ///< the first few gaps and oddities
};

/// The TCP streams to and from `port` in a pcap or pcapng file (tcpdump,
/// tshark, Wireshark) of a plaintext listener, as a capture of listener
/// `listener`: a SYN opens a connection, each segment's payload from the
/// peer is a read and from the server a reply, a FIN or RST ends it (by the
/// peer or by locomov, whichever sent it). Segments are put back in
/// sequence order and retransmissions dropped; a stream seen without its
/// SYN starts at its first segment. Ethernet, Linux cooked (v1, v2),
/// loopback and raw IP links, IPv4 and IPv6. Throws std::runtime_error
/// with libpcap's reason when the file cannot be read.
imported import_pcap(const std::filesystem::path& file, std::uint16_t port,
                     const std::string& listener = "plain");

/// import_pcap on an open stream, which it closes.
imported import_pcap(std::FILE* stream, std::uint16_t port, const std::string& listener = "plain");

/// A file of JSON packets (one per line, or concatenated) as a capture:
/// all on one connection, or each on its own when `one_per_connection`.
/// The first read is received at `start_us`, each next one 1 ms later;
/// each connection ends as a device sending close_notify after its last
/// packet. There are no recorded replies: a replay reports its replies as
/// extra.
imported import_packets(std::istream& in, bool one_per_connection, std::int64_t start_us,
                        const std::string& listener = "packet");

/// Writes `records` as a capture file.
void write_records(const std::vector<record>& records, std::ostream& out);

}  // namespace locomov::capture
