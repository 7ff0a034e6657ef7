// The watchdog's question: do the actors still take messages?

#include "actors/liveness.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace locomov::actors {
namespace {

using namespace std::chrono_literals;
using work_atom = caf::atom_constant<caf::atom("work")>;

/// Answers pings; `work` keeps its thread busy for `pause`.
caf::behavior answering(caf::event_based_actor*, std::chrono::milliseconds pause) {
  return {
      [](ping_atom) { return ping_atom::value; },
      [pause](work_atom) { std::this_thread::sleep_for(pause); },
  };
}

TEST(Liveness, ActorsThatTakeMessagesAnswer) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::vector<caf::actor> targets{sys.spawn(answering, 0ms), sys.spawn(answering, 0ms)};

  EXPECT_TRUE(all_answer(sys, targets, 1s));

  for (auto& a : targets) {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
}

TEST(Liveness, AnActorStuckInAHandlerFailsWithinTheLimit) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto healthy = sys.spawn(answering, 0ms);
  auto stuck = sys.spawn<caf::detached>(answering, 1s);
  caf::anon_send(stuck, work_atom::value);
  std::this_thread::sleep_for(50ms);  // the work has begun

  const auto asked = std::chrono::steady_clock::now();
  EXPECT_FALSE(all_answer(sys, {healthy, stuck}, 300ms));
  const auto took = std::chrono::steady_clock::now() - asked;
  EXPECT_LT(took, 1s);

  caf::anon_send_exit(healthy, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(stuck, caf::exit_reason::user_shutdown);
}

TEST(Liveness, AQueueThatMovesWithinTheLimitAnswers) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto busy = sys.spawn(answering, 10ms);
  // A fifth of a second of queued work ahead of the ping.
  for (int i = 0; i < 20; ++i) {
    caf::anon_send(busy, work_atom::value);
  }

  EXPECT_TRUE(all_answer(sys, {busy}, 2s));

  caf::anon_send_exit(busy, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace locomov::actors
