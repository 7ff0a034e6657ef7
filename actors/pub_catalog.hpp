#pragma once

#include <string>

#include <caf/fwd.hpp>

#include "storage/packet_store.hpp"

namespace locomov::actors {

/// Spawns the pub catalog on its own thread (it blocks on PostgreSQL):
/// answers (lookup, id) with the pub_id of the `pub` row the device id
/// names under `key`, 0 when there is none, or an error when the database
/// cannot tell. Lookups are cheap to lose (pub actors then send packets
/// unresolved), so each gives up after a short timeout, and for a second
/// after a failure lookups fail at once rather than each waiting for it.
caf::actor spawn_pub_catalog(caf::actor_system& sys, const std::string& conninfo,
                             storage::pub_key key);

}  // namespace locomov::actors
