#pragma once

#include <chrono>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace locomov::actors {

/// True when every actor of `targets` answered a ping within `limit`.
/// The listeners (on CAF's multiplexer thread) and the pub registry (on
/// the scheduler) answer pings; each answering proves that its thread
/// still takes messages. A ping waits behind what is queued before it, so
/// `limit` must allow for the deepest queue that still moves. Blocks the
/// calling thread, which must not be an actor's.
bool all_answer(caf::actor_system& sys, const std::vector<caf::actor>& targets,
                std::chrono::milliseconds limit);

}  // namespace locomov::actors
