#pragma once

#include <caf/fwd.hpp>

#include "actors/settings.hpp"
#include "actors/stop_flag.hpp"

namespace locomov::actors {

/// Spawns a batching writer on its own thread (it blocks on PostgreSQL) with
/// its own connection. It accepts `write_msg` and answers each packet's
/// connection actor with (stored, seq) once the batch holding it committed
/// or was appended to the spool, or with (failed, seq) when neither was
/// possible within `retry_for`. While the spool holds packets, batches join
/// it, so the database receives them in order. Once `stopping` is raised it
/// no longer waits between retries: a batch the database does not take at
/// once goes to the spool or fails.
caf::actor spawn_writer(caf::actor_system& sys, const writer_settings& settings, int index,
                        stop_flag stopping);

}  // namespace locomov::actors
