#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/settings.hpp"

namespace locomov::actors {

/// The storage side of the actor pipeline: writers, the pub catalog and the
/// pub registry that connection actors send their packets to.
struct pipeline {
  std::vector<caf::actor> writers;
  caf::actor drainer;  ///< moves the spool into the database; none without a spool
  caf::actor catalog;
  caf::actor registry;
  caf::actor arbiter;  ///< the confo-arbiter
  caf::actor query;    ///< answers the app's confo queries
  /// Raised by stop_pipeline, so actors sleeping between retries stop retrying.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
};

/// Spawns writers, the spool's drainer (when `writers.spool` is set),
/// catalog, registry, the confo-arbiter and the query actor. The actors
/// connect lazily and reconnect by themselves.
pipeline start_pipeline(caf::actor_system& sys, const writer_settings& writers,
                        const pub_settings& pubs, const confo_settings& confos);

/// Stops the arbiter and the query actor, then the registry (and with it every
/// pub actor), then the writers, which commit (or spool) what they hold
/// first, then the drainer; blocks until all have ended.
void stop_pipeline(caf::actor_system& sys, pipeline& p);

}  // namespace locomov::actors
