#include "actors/pub_actor.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/messages.hpp"
#include "common/logging.hpp"

namespace locomov::actors {
namespace {

/// How soon a pub actor whose lookup failed asks again.
constexpr std::chrono::seconds lookup_retry{2};

/// `unknown`: the lookup failed (database unreachable). Packets then go to
/// the writers unresolved, which spool them and let the database decide
/// between `packet` and quarantine when they are drained.
enum class pub_status { looking_up, exists, missing, unknown };

struct pub_state {
  std::int32_t id = 0;
  pub_settings settings;
  pub_status status = pub_status::looking_up;
  bool lookup_pending = false;
  std::int32_t pub_id = 0;
  std::vector<packet_msg> held;  // packets that arrived during the lookup
  std::vector<caf::actor> writers;
  std::size_t next_writer = 0;
  std::uint64_t packets = 0;
  std::uint64_t quarantined = 0;
  std::int64_t last_seen_us = 0;
  std::chrono::steady_clock::time_point last_packet = std::chrono::steady_clock::now();
  actor_probe probe{name};
  static inline const char* name = "pub";
};

using pub_actor = caf::stateful_actor<pub_state>;

void route(pub_actor* self, packet_msg&& msg) {
  auto& st = self->state;
  ++st.packets;
  st.last_packet = std::chrono::steady_clock::now();
  st.last_seen_us = std::max(st.last_seen_us, msg.value.created_at_us);
  write_msg out;
  out.packet.value = msg.value;
  out.packet.quarantined = st.status == pub_status::missing;
  if (st.status == pub_status::exists) {
    out.packet.pub_id = st.pub_id;
  } else if (st.status == pub_status::unknown) {
    // Under pub_key::pub_id the id is the pub_id, and the database sends it
    // to quarantine if no such pub exists; under pub_key::hash, 0 asks the
    // writer to resolve it (storage::packet_store::resolve).
    out.packet.pub_id = st.settings.key == storage::pub_key::pub_id ? msg.value.id : 0;
  } else {
    out.packet.pub_id = msg.value.id;
  }
  out.reply_to = std::move(msg.reply_to);
  out.seq = msg.seq;
  if (out.packet.quarantined) {
    ++st.quarantined;
  }
  // Round robin spreads one busy device's packets over every writer.
  auto& writer = st.writers[st.next_writer++ % st.writers.size()];
  self->send(writer, std::move(out));
}

void release_held(pub_actor* self) {
  auto held = std::move(self->state.held);
  self->state.held.clear();
  for (auto& msg : held) {
    route(self, std::move(msg));
  }
}

void look_up(pub_actor* self, caf::actor catalog) {
  self->state.lookup_pending = true;
  self->request(catalog, caf::infinite, lookup_atom::value, self->state.id)
      .then(
          [self](std::int32_t pub_id) {
            auto& st = self->state;
            st.lookup_pending = false;
            if (st.status == pub_status::looking_up || st.status == pub_status::unknown) {
              st.status = pub_id > 0 ? pub_status::exists : pub_status::missing;
              st.pub_id = pub_id;
              if (st.status == pub_status::missing) {
                logs::actors().info("pub unknown, its packets go to quarantine id={}", st.id);
              }
            }
            release_held(self);
          },
          [self, catalog](caf::error&) {
            // No guess either way: the packets travel unresolved, and the
            // lookup is tried again while the device keeps sending.
            auto& st = self->state;
            st.lookup_pending = false;
            if (st.status == pub_status::looking_up) {
              st.status = pub_status::unknown;
            }
            release_held(self);
            self->delayed_send(self, lookup_retry, lookup_atom::value, catalog);
          });
}

caf::behavior pub(pub_actor* self, std::int32_t id, pub_settings settings, caf::actor catalog,
                  caf::actor registry, std::vector<caf::actor> writers) {
  self->state.id = id;
  self->state.settings = settings;
  self->state.writers = std::move(writers);
  look_up(self, catalog);
  self->delayed_send(self, settings.idle_timeout, idle_atom::value);
  return {
      [self](packet_msg& msg) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        if (st.status == pub_status::looking_up) {
          st.held.push_back(std::move(msg));
          return;
        }
        route(self, std::move(msg));
      },
      [self](lookup_atom, caf::actor catalog) {
        const auto measured = self->state.probe.handle(self);
        if (self->state.status == pub_status::unknown && !self->state.lookup_pending) {
          look_up(self, std::move(catalog));
        }
      },
      [self](pub_known_atom, std::int32_t pub_id) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        st.status = pub_status::exists;
        st.pub_id = pub_id;
        release_held(self);
      },
      [self](stop_atom) {
        const auto measured = self->state.probe.handle(self);
        self->quit();
      },
      // One timer per idle period rather than a behavior timeout: CAF re-arms
      // an `after` clause on every message, which costs a clock entry per packet.
      [self, settings, registry](idle_atom) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        const auto quiet = std::chrono::steady_clock::now() - st.last_packet;
        auto left = settings.idle_timeout -
                    std::chrono::duration_cast<std::chrono::milliseconds>(quiet);
        if (st.status != pub_status::looking_up && !st.lookup_pending &&
            quiet >= settings.idle_timeout) {
          // The registry answers with stop; until then packets keep coming.
          self->send(registry, idle_atom::value, st.id);
          left = settings.idle_timeout;
        }
        self->delayed_send(self, std::max(left, std::chrono::milliseconds(10)),
                           idle_atom::value);
      },
  };
}

}  // namespace

caf::actor spawn_pub_actor(caf::event_based_actor* registry, std::int32_t id,
                           const pub_settings& settings, const caf::actor& catalog,
                           const std::vector<caf::actor>& writers) {
  return registry->spawn<caf::linked>(pub, id, settings, catalog,
                                      caf::actor_cast<caf::actor>(registry), writers);
}

}  // namespace locomov::actors
