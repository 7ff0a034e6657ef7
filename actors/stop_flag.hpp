#pragma once

#include <atomic>
#include <chrono>
#include <memory>

namespace locomov::actors {

/// Raised once when the daemon starts shutting down. Detached actors that
/// sleep between database retries read it, since they cannot see a message
/// while they block.
using stop_flag = std::shared_ptr<const std::atomic<bool>>;

/// Sleeps for `total` unless `stopping` is raised meanwhile (checked every
/// 50 ms); false when it was.
bool pause_unless_stopping(std::chrono::milliseconds total, const std::atomic<bool>& stopping);

}  // namespace locomov::actors
