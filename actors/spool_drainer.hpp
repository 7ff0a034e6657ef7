#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/stop_flag.hpp"

namespace locomov::storage {
class spool;
}  // namespace locomov::storage

namespace locomov::actors {

/// Spawns the actor that moves the spool's packets into the database, on a
/// thread and connection of its own: oldest first, a few thousand rows per
/// transaction, each marked consumed once committed, so that a crash in
/// between only repeats what the database's keys then drop as duplicates.
/// It starts on whatever a previous run left in the spool, polls while the
/// spool is empty, and backs off while the database stays away.
caf::actor spawn_spool_drainer(caf::actor_system& sys, const std::string& conninfo,
                               std::chrono::milliseconds write_timeout,
                               std::shared_ptr<storage::spool> spool, stop_flag stopping);

}  // namespace locomov::actors
