#include "actors/stop_flag.hpp"

#include <algorithm>
#include <thread>

namespace locomov::actors {

bool pause_unless_stopping(std::chrono::milliseconds total, const std::atomic<bool>& stopping) {
  constexpr std::chrono::milliseconds slice{50};
  const auto until = std::chrono::steady_clock::now() + total;
  while (!stopping.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) {
      return true;
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(slice, until - now));
  }
  return false;
}

}  // namespace locomov::actors
