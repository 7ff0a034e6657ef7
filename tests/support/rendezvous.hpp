#pragma once

#include <condition_variable>
#include <mutex>

namespace locomov::test {

/// Lets two threads start each round of a race together: each calls
/// arrive() and returns only once the other has arrived too.
class rendezvous {
 public:
  void arrive() {
    std::unique_lock lock(m_);
    const int round = round_;
    if (++waiting_ == 2) {
      waiting_ = 0;
      ++round_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return round_ != round; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int waiting_ = 0;
  int round_ = 0;
};

}  // namespace locomov::test
