#pragma once

#include <caf/fwd.hpp>

#include "actors/settings.hpp"

namespace locomov::actors {

/// Spawns a batching writer on its own thread (it blocks on PostgreSQL) with
/// its own connection. It accepts `write_msg` and answers each packet's
/// connection actor with (stored, seq) after the commit that holds it, or
/// (failed, seq) when the batch could not be stored within `retry_for`.
caf::actor spawn_writer(caf::actor_system& sys, const writer_settings& settings, int index);

/// Spawns the pub catalog on its own thread: answers (lookup, key_value) with
/// the pub_id of the matching `pub` row, or 0 when there is none.
caf::actor spawn_catalog(caf::actor_system& sys, const writer_settings& settings,
                         storage::pub_key key);

}  // namespace locomov::actors
