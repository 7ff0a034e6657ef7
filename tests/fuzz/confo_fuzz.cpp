// The confirmation port's device path: frames decoded into confos.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/confo.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using locomov::fuzz::check;
using locomov::protocol::confo_result;

constexpr std::int64_t received_at_us = 1'700'000'000'000'000;

void check_decoded(const confo_result& r) {
  if (r.outcome != confo_result::kind::ok) {
    check(!r.reason.empty(), "a refused confo names its reason");
    check(locomov::fuzz::is_one_printable_line(r.reason), "reasons are one printable line");
    return;
  }
  const auto& c = r.value;
  check(!c.device_name.empty() && !c.ssid.empty(), "device name and ssid are never empty");
  for (const auto* s : {&c.device_name, &c.ssid, &c.email}) {
    check(s->find('\0') == std::string::npos, "no NUL reaches a text column");
  }
  check(std::isfinite(c.longitude) && std::isfinite(c.latitude), "coordinates are finite");
  check(c.received_at_us == received_at_us, "the receipt time is kept");
  check(c.device_time_us > 0, "a confo always has a time");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const locomov::protocol::confo_defaults defaults;
  locomov::fuzz::split_into_frames(data, size, 4096, [&](const std::string& frame) {
    check_decoded(locomov::protocol::decode_confo(frame, received_at_us, defaults));
  });
  check_decoded(locomov::protocol::decode_confo(
      locomov::fuzz::payload(data, size), received_at_us, defaults));
  return 0;
}
