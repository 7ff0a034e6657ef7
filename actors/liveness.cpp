#include "actors/liveness.hpp"

#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace locomov::actors {

bool all_answer(caf::actor_system& sys, const std::vector<caf::actor>& targets,
                std::chrono::milliseconds limit) {
  caf::scoped_actor self{sys};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (const auto& target : targets) {
    // One deadline for all: the caller's budget is the whole round.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    bool answered = false;
    self->request(target, left, ping_atom::value)
        .receive([&answered](ping_atom) { answered = true; }, [](const caf::error&) {});
    if (!answered) {
      return false;
    }
  }
  return true;
}

}  // namespace locomov::actors
