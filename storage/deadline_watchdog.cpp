#include "storage/deadline_watchdog.hpp"

#include <sys/socket.h>

#include <algorithm>

namespace locomov::storage {

deadline_watchdog& deadline_watchdog::shared() {
  static deadline_watchdog instance;
  return instance;
}

deadline_watchdog::deadline_watchdog() : thread_([this] { run(); }) {}

deadline_watchdog::~deadline_watchdog() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void deadline_watchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    const auto now = clock::now();
    auto next = clock::time_point::max();
    for (auto& [id, e] : entries_) {
      if (e.fired) {
        continue;
      }
      if (e.deadline <= now) {
        // Under the lock, so the watch (and its descriptor) outlives this.
        ::shutdown(e.fd, SHUT_RDWR);
        e.fired = true;
      } else {
        next = std::min(next, e.deadline);
      }
    }
    next_wake_ = next;
    if (next == clock::time_point::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, next);
    }
  }
}

deadline_watchdog::watch::watch(deadline_watchdog& dog, int fd, clock::time_point deadline)
    : dog_(dog) {
  bool earlier = false;
  {
    const std::lock_guard<std::mutex> lock(dog_.mutex_);
    id_ = dog_.next_id_++;
    dog_.entries_.emplace(id_, entry{fd, deadline, false});
    earlier = deadline < dog_.next_wake_;
    if (earlier) {
      dog_.next_wake_ = deadline;
    }
  }
  if (earlier) {
    dog_.wake_.notify_one();
  }
}

deadline_watchdog::watch::~watch() {
  const std::lock_guard<std::mutex> lock(dog_.mutex_);
  dog_.entries_.erase(id_);
}

bool deadline_watchdog::watch::fired() const {
  const std::lock_guard<std::mutex> lock(dog_.mutex_);
  const auto it = dog_.entries_.find(id_);
  return it != dog_.entries_.end() && it->second.fired;
}

}  // namespace locomov::storage
