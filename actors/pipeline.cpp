#include "actors/pipeline.hpp"

#include <caf/all.hpp>

#include "actors/confo_arbiter.hpp"
#include "actors/pub_catalog.hpp"
#include "actors/pub_registry.hpp"
#include "actors/spool_drainer.hpp"
#include "actors/writer_actor.hpp"

namespace locomov::actors {

pipeline start_pipeline(caf::actor_system& sys, const writer_settings& writers,
                        const pub_settings& pubs, const confo_settings& confos) {
  pipeline p;
  for (std::size_t i = 0; i < std::max<std::size_t>(writers.writers, 1); ++i) {
    p.writers.push_back(spawn_writer(sys, writers, static_cast<int>(i), p.stopping));
  }
  if (writers.spool) {
    p.drainer = spawn_spool_drainer(sys, writers.conninfo, writers.write_timeout, writers.spool,
                                    p.stopping);
  }
  p.catalog = spawn_pub_catalog(sys, writers.conninfo, pubs.key);
  p.registry = spawn_pub_registry(sys, pubs, p.catalog, p.writers);
  p.arbiter = spawn_confo_arbiter(sys, confos, p.registry, p.stopping);
  p.query = spawn_confo_query(sys, confos);
  return p;
}

void stop_pipeline(caf::actor_system& sys, pipeline& p) {
  caf::scoped_actor self{sys};
  p.stopping->store(true);
  // A decision in progress finishes first: the arbiter handles the exit
  // message only after the confo it is deciding.
  for (auto* actor : {&p.arbiter, &p.query}) {
    self->send_exit(*actor, caf::exit_reason::user_shutdown);
    self->wait_for(*actor);
  }
  // Pub actors may still be routing packets to writers; the registry's exit
  // ends them (they are linked) before the writers are told to finish.
  self->send_exit(p.registry, caf::exit_reason::user_shutdown);
  self->wait_for(p.registry);
  self->send_exit(p.catalog, caf::exit_reason::user_shutdown);
  for (auto& writer : p.writers) {
    self->send_exit(writer, caf::exit_reason::user_shutdown);
  }
  self->wait_for(p.catalog);
  for (auto& writer : p.writers) {
    self->wait_for(writer);
  }
  if (p.drainer) {
    self->send_exit(p.drainer, caf::exit_reason::user_shutdown);
    self->wait_for(p.drainer);
  }
  p = pipeline{};
}

}  // namespace locomov::actors
