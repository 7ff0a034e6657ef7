#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace locomov::metrics {
class counter;
class gauge;
class histogram;
}  // namespace locomov::metrics

namespace locomov::actors {

/// The figures of one kind of actor, labelled kind="...": how many are
/// alive, messages handled, messages waiting in their mailboxes (summed
/// over the kind), the deepest single mailbox seen, and time per message.
/// CAF 0.17 counts none of this itself, so each actor reports its own.
struct kind_metrics {
  metrics::gauge* alive = nullptr;
  metrics::counter* messages = nullptr;
  metrics::gauge* waiting = nullptr;
  metrics::gauge* peak = nullptr;
  metrics::histogram* seconds = nullptr;
};

/// The series of `kind` ("connection", "pub", ...), created on first use;
/// they live for the process.
kind_metrics& metrics_for(const char* kind);

/// A member of an actor's state: counts the actor alive while the state
/// lives, and measures each message its handlers take. Only the owning
/// actor may use it (it reads the actor's own mailbox).
class actor_probe {
 public:
  explicit actor_probe(const char* kind);
  ~actor_probe();
  actor_probe(const actor_probe&) = delete;
  actor_probe& operator=(const actor_probe&) = delete;

  /// Measures one message from its construction to its end; make one at
  /// the top of a handler.
  class measure {
   public:
    measure(actor_probe& probe, std::size_t waiting);
    ~measure();
    measure(const measure&) = delete;
    measure& operator=(const measure&) = delete;

   private:
    actor_probe& probe_;
    std::chrono::steady_clock::time_point start_;
  };

  /// `self` is the actor that owns this probe, inside one of its handlers.
  /// Counts the messages CAF has already taken off the mailbox's inbound
  /// stack for this round, not those pushed since: mailbox().size() would
  /// move them over, and doing that in the middle of CAF's round loses or
  /// disturbs messages (TLS handshakes stalled when it was tried).
  template <class Self>
  [[nodiscard]] measure handle(Self* self) {
    return measure(*this, self->mailbox().queue().total_task_size());
  }

 private:
  kind_metrics& metrics_;
  std::int64_t waiting_ = 0;  // what this actor last added to metrics_.waiting
};

}  // namespace locomov::actors
