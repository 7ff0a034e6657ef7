// What users hand to locomovctl capture and replay: pcap files to import,
// and capture lines to read back.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "capture/import.hpp"
#include "capture/record.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using locomov::fuzz::check;
namespace capture = locomov::capture;

void check_imported(const capture::imported& result) {
  std::int64_t last = 0;
  for (const auto& r : result.records) {
    check(r.t_us > last, "imported records are in strictly increasing time");
    last = r.t_us;
    check(r.conn >= 1 && r.conn <= result.connections, "records name imported connections");
    // What import writes, replay must read back as it was.
    std::string error;
    const auto back = capture::parse_line(capture::to_line(r), error);
    check(back.has_value(), "an imported record reads back");
    check(back->data == r.data && back->conn == r.conn && back->ev == r.ev,
          "an imported record reads back unchanged");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto r = capture::parse_line(bytes, error)) {
    check(capture::parse_line(capture::to_line(*r), error).has_value(),
          "a record read is written so that it reads again");
  } else {
    check(!error.empty(), "a refused line says why");
  }
  if (size == 0) {
    return 0;
  }
  std::FILE* stream = fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb");
  if (stream == nullptr) {
    return 0;
  }
  try {
    check_imported(capture::import_pcap(stream, 38982));
  } catch (const std::runtime_error&) {
    // Not a pcap, or cut short: refused with libpcap's reason.
  }
  return 0;
}
