// The packet port's input path: a TLS-decrypted byte stream cut into frames
// and decoded into readings.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/packet_decoder.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using locomov::fuzz::check;
using locomov::protocol::decode_result;

constexpr std::int64_t received_at_us = 1'700'000'000'000'000;
constexpr std::int64_t year_2000_us = 946'684'800'000'000;
constexpr std::int64_t day_us = 86'400'000'000;

void check_decoded(const decode_result& r) {
  if (r.outcome != decode_result::kind::ok) {
    check(!r.reason.empty(), "a refused frame names its reason");
    check(locomov::fuzz::is_one_printable_line(r.reason), "reasons are one printable line");
    return;
  }
  const auto& v = r.value;
  check(v.id > 0, "a stored pub id is positive");
  check(v.created_at_us >= year_2000_us && v.created_at_us <= received_at_us + day_us,
        "a stored time lies between 2000 and a day after receipt");
  for (float x : v.values) {
    check(std::isfinite(x), "no NaN or Infinity reaches a REAL column");
  }
  check(!v.has_lat || std::isfinite(v.lat), "latitude is finite");
  check(!v.has_lng || std::isfinite(v.lng), "longitude is finite");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  locomov::fuzz::split_into_frames(data, size, 4096, [](const std::string& frame) {
    check_decoded(locomov::protocol::decode_packet(frame, received_at_us));
  });

  // The whole input as one frame too: the splitter never hands the decoder
  // some shapes (an unbalanced value, trailing bytes).
  check_decoded(locomov::protocol::decode_packet(
      locomov::fuzz::payload(data, size), received_at_us));
  return 0;
}
