#pragma once

#include <vector>

#include <caf/fwd.hpp>

#include "actors/settings.hpp"

namespace locomov::actors {

/// Spawns the registry of pub actors. It accepts `packet_msg` from connection
/// actors and hands each to the pub actor of its device id, spawning it on
/// first use; idle pub actors are stopped through it, so a packet is never
/// sent to a pub actor that is about to stop. (pub_known, id, pub_id) tells
/// the pub actor of `id`, if any, that its pub now exists.
caf::actor spawn_pub_registry(caf::actor_system& sys, const pub_settings& settings,
                              caf::actor catalog, std::vector<caf::actor> writers);

}  // namespace locomov::actors
