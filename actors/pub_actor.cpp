#include "actors/pub_actor.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "common/logging.hpp"

namespace locomov::actors {
namespace {

enum class pub_status { looking_up, exists, missing };

struct pub_state {
  std::int32_t id = 0;
  pub_settings settings;
  pub_status status = pub_status::looking_up;
  bool lookup_pending = false;
  std::optional<std::chrono::steady_clock::time_point> lookup_failing_since;
  std::int32_t pub_id = 0;
  std::vector<packet_msg> held;  // packets that arrived during the lookup
  std::vector<caf::actor> writers;
  std::size_t next_writer = 0;
  std::uint64_t packets = 0;
  std::uint64_t quarantined = 0;
  std::int64_t last_seen_us = 0;
  std::chrono::steady_clock::time_point last_packet = std::chrono::steady_clock::now();
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
  out.packet.quarantined = st.status != pub_status::exists;
  out.packet.pub_id = out.packet.quarantined ? msg.value.id : st.pub_id;
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

// The database stayed away for the whole retry period: the held packets are
// reported failed, so their connections close unacknowledged (the devices
// resend), and the next packet starts a new lookup.
void give_up_lookup(pub_actor* self) {
  auto& st = self->state;
  logs::actors().error("pub lookup failed, packets not acknowledged id={} packets={} after={}ms",
                       st.id, st.held.size(), st.settings.lookup_retry_for.count());
  for (auto& msg : st.held) {
    self->send(msg.reply_to, failed_atom::value, msg.seq);
  }
  st.held.clear();
  st.lookup_pending = false;
  st.lookup_failing_since.reset();
}

void look_up(pub_actor* self, caf::actor catalog) {
  self->state.lookup_pending = true;
  self->request(catalog, caf::infinite, lookup_atom::value, self->state.id)
      .then(
          [self](std::int32_t pub_id) {
            auto& st = self->state;
            st.lookup_pending = false;
            st.lookup_failing_since.reset();
            if (st.status == pub_status::looking_up) {
              st.status = pub_id > 0 ? pub_status::exists : pub_status::missing;
              st.pub_id = pub_id;
              if (st.status == pub_status::missing) {
                logs::actors().info("pub unknown, its packets go to quarantine id={}", st.id);
              }
            }
            release_held(self);
          },
          [self, catalog](caf::error&) {
            // The catalog already retried once; try again shortly rather than
            // guessing, since a wrong guess would misfile every packet.
            auto& st = self->state;
            const auto now = std::chrono::steady_clock::now();
            if (!st.lookup_failing_since) {
              st.lookup_failing_since = now;
            }
            if (st.held.empty() || now - *st.lookup_failing_since >= st.settings.lookup_retry_for) {
              give_up_lookup(self);
              return;
            }
            self->delayed_send(self, std::chrono::seconds(1), lookup_atom::value, catalog);
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
      [self, catalog](packet_msg& msg) {
        auto& st = self->state;
        if (st.status == pub_status::looking_up) {
          st.held.push_back(std::move(msg));
          if (!st.lookup_pending) {
            look_up(self, catalog);
          }
          return;
        }
        route(self, std::move(msg));
      },
      [self](lookup_atom, caf::actor catalog) { look_up(self, std::move(catalog)); },
      [self](pub_known_atom, std::int32_t pub_id) {
        auto& st = self->state;
        st.status = pub_status::exists;
        st.pub_id = pub_id;
        release_held(self);
      },
      [self](stop_atom) { self->quit(); },
      // One timer per idle period rather than a behavior timeout: CAF re-arms
      // an `after` clause on every message, which costs a clock entry per packet.
      [self, settings, registry](idle_atom) {
        auto& st = self->state;
        const auto quiet = std::chrono::steady_clock::now() - st.last_packet;
        auto left = settings.idle_timeout -
                    std::chrono::duration_cast<std::chrono::milliseconds>(quiet);
        if (st.status != pub_status::looking_up && quiet >= settings.idle_timeout) {
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
