// Per-kind actor figures, from real actors on a real CAF scheduler.

#include "actors/actor_probe.hpp"

#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <chrono>
#include <thread>

#include "common/metrics.hpp"

namespace locomov::actors {
namespace {

using namespace std::chrono_literals;
using work_atom = caf::atom_constant<caf::atom("work")>;

/// A series' value as a scrape would show it.
double value_of(const std::string& name, const std::string& labels) {
  for (const auto& s : metrics::snapshot()) {
    if (s.name == name && s.labels == labels) {
      return s.value;
    }
  }
  return -1;
}

struct sleeper_state {
  actor_probe probe{name};
  static inline const char* name = "test-sleeper";
};

/// Takes `pause` over each message, so that messages sent at once queue up.
caf::behavior sleeper(caf::stateful_actor<sleeper_state>* self, std::chrono::milliseconds pause) {
  return {
      [self, pause](work_atom) {
        const auto measured = self->state.probe.handle(self);
        std::this_thread::sleep_for(pause);
        return 1;
      },
  };
}

TEST(ActorProbe, CountsActorsMessagesAndTimePerMessage) {
  const std::string kind = "kind=\"test-sleeper\"";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto a = self->spawn(sleeper, 20ms);
    auto b = self->spawn(sleeper, 20ms);
    for (int i = 0; i < 3; ++i) {
      self->request(a, caf::infinite, work_atom::value).receive([](int) {}, [](caf::error&) {});
    }
    self->request(b, caf::infinite, work_atom::value).receive([](int) {}, [](caf::error&) {});

    EXPECT_EQ(value_of("locomov_actors_alive", kind), 2);
    EXPECT_EQ(value_of("locomov_actor_messages_total", kind), 4);
    const auto& h =
        metrics::get_histogram("locomov_actor_message_seconds", kind, metrics::seconds_buckets());
    EXPECT_EQ(h.count(), 4u);
    EXPECT_GE(h.sum(), 4 * 0.020);
    EXPECT_LT(h.sum(), 4 * 0.020 + 1.0);

    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->wait_for(a);
    EXPECT_EQ(value_of("locomov_actors_alive", kind), 1);
    self->send_exit(b, caf::exit_reason::user_shutdown);
    self->wait_for(b);
  }
  EXPECT_EQ(value_of("locomov_actors_alive", kind), 0);
}

struct queue_state {
  actor_probe probe{name};
  static inline const char* name = "test-queue";
};

// Takes an argument although it needs none: CAF 0.17 spawning a function
// actor without one binds a reference to a null tuple (UBSan reports it).
caf::behavior slow_queue(caf::stateful_actor<queue_state>* self, std::chrono::milliseconds pause) {
  return {
      [self, pause](work_atom) {
        const auto measured = self->state.probe.handle(self);
        std::this_thread::sleep_for(pause);
      },
  };
}

TEST(ActorProbe, MailboxDepthRisesWhileMessagesQueueAndFallsWhenTheyAreHandled) {
  const std::string kind = "kind=\"test-queue\"";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto a = self->spawn(slow_queue, 50ms);

  // All ten arrive while the first is being handled: the second message
  // handled sees at least eight more behind it.
  for (int i = 0; i < 10; ++i) {
    self->send(a, work_atom::value);
  }
  std::this_thread::sleep_for(120ms);
  EXPECT_GE(value_of("locomov_actor_mailbox_depth_peak", kind), 8);
  EXPECT_GE(value_of("locomov_actor_mailbox_depth", kind), 1);

  const auto until = std::chrono::steady_clock::now() + 5s;
  while (value_of("locomov_actor_messages_total", kind) < 10 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(value_of("locomov_actor_messages_total", kind), 10);
  // The last message saw an empty mailbox; the peak stays.
  EXPECT_EQ(value_of("locomov_actor_mailbox_depth", kind), 0);
  EXPECT_GE(value_of("locomov_actor_mailbox_depth_peak", kind), 8);

  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
}

}  // namespace
}  // namespace locomov::actors
