#pragma once

#include <cstdint>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/settings.hpp"

namespace locomov::actors {

/// Spawns, linked to `registry`, the actor of one device id. It looks its
/// pub up once through `catalog` (holding packets meanwhile), keeps the
/// device's last-seen time and counts, and routes each packet to a writer:
/// to `packet` when the pub exists, to quarantine otherwise. When the
/// lookup fails (database unreachable) packets go unresolved, for the
/// database to decide, and the lookup is repeated while packets come. After
/// `idle_timeout` without packets it asks the registry to stop it.
caf::actor spawn_pub_actor(caf::event_based_actor* registry, std::int32_t id,
                           const pub_settings& settings, const caf::actor& catalog,
                           const std::vector<caf::actor>& writers);

}  // namespace locomov::actors
