#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/settings.hpp"
#include "actors/stop_flag.hpp"

namespace locomov::actors {

/// Spawns the confo-arbiter: one detached actor (its own thread and database
/// connection) that decides every valid confo in arrival order, one
/// transaction each, and answers (decide, confo) with true once the decision
/// committed, false when the database stayed unusable for retry_for (or,
/// once `stopping` is raised, after one failed attempt). A pub it creates is
/// announced to `registry`, so that device's packets stop going to
/// quarantine at once.
caf::actor spawn_confo_arbiter(caf::actor_system& sys, const confo_settings& settings,
                               caf::actor registry, stop_flag stopping);

/// Spawns the actor answering the app's queries, (query, device_name, ssid)
/// -> (found, hash), on a connection of its own, so lookups never wait
/// behind decisions.
caf::actor spawn_confo_query(caf::actor_system& sys, const confo_settings& settings);

}  // namespace locomov::actors
