#include "actors/pub_registry.hpp"

#include <unordered_map>
#include <utility>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/messages.hpp"
#include "actors/pub_actor.hpp"

namespace locomov::actors {
namespace {

struct registry_state {
  pub_settings settings;
  caf::actor catalog;
  std::vector<caf::actor> writers;
  std::unordered_map<std::int32_t, caf::actor> pubs;
  actor_probe probe{name};
  static inline const char* name = "pub-registry";
};

caf::behavior registry(caf::stateful_actor<registry_state>* self, pub_settings settings,
                       caf::actor catalog, std::vector<caf::actor> writers) {
  auto& st = self->state;
  st.settings = settings;
  st.catalog = std::move(catalog);
  st.writers = std::move(writers);
  return {
      [self](packet_msg& msg) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        auto& pub = st.pubs[msg.value.id];
        if (!pub) {
          // Linked, so the pub actors end with the registry at shutdown.
          pub = spawn_pub_actor(self, msg.value.id, st.settings, st.catalog, st.writers);
        }
        self->send(pub, std::move(msg));
      },
      [self](ping_atom) {
        const auto measured = self->state.probe.handle(self);
        return ping_atom::value;
      },
      [self](idle_atom, std::int32_t id) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        auto it = st.pubs.find(id);
        // A stale notice from an actor already replaced is ignored.
        if (it != st.pubs.end() && self->current_sender() == it->second.address()) {
          self->send(it->second, stop_atom::value);
          st.pubs.erase(it);
        }
      },
      [self](pub_known_atom, std::int32_t id, std::int32_t pub_id) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        if (auto it = st.pubs.find(id); it != st.pubs.end()) {
          self->send(it->second, pub_known_atom::value, pub_id);
        }
      },
  };
}

}  // namespace

caf::actor spawn_pub_registry(caf::actor_system& sys, const pub_settings& settings,
                              caf::actor catalog, std::vector<caf::actor> writers) {
  return sys.spawn(registry, settings, std::move(catalog), std::move(writers));
}

}  // namespace locomov::actors
