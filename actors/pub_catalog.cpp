#include "actors/pub_catalog.hpp"

#include <chrono>
#include <memory>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/messages.hpp"
#include "common/logging.hpp"

namespace locomov::actors {
namespace {

using clock = std::chrono::steady_clock;

/// Longest a lookup waits for the database.
constexpr std::chrono::seconds lookup_timeout{2};

/// After a failure, lookups fail at once for this long.
constexpr std::chrono::seconds quiet_after_failure{1};

struct catalog_state {
  std::string conninfo;
  storage::pub_key key = storage::pub_key::pub_id;
  std::unique_ptr<storage::packet_store> store;
  clock::time_point failed_at{};
  bool failing = false;  ///< the last lookup failed; logged once until one succeeds
  actor_probe probe{name};
  static inline const char* name = "pub-catalog";
};

using catalog_actor = caf::stateful_actor<catalog_state>;

caf::result<std::int32_t> look_up(catalog_actor* self, std::int32_t id) {
  auto& st = self->state;
  if (st.failing && clock::now() - st.failed_at < quiet_after_failure) {
    return caf::make_error(caf::sec::runtime_error, "database unavailable");
  }
  try {
    if (!st.store || !st.store->connected()) {
      st.store = std::make_unique<storage::packet_store>(st.conninfo, lookup_timeout);
    }
    const auto pub_id = st.store->find_pub(st.key, id).value_or(0);
    if (st.failing) {
      st.failing = false;
      logs::storage().info("pub lookups work again");
    }
    return pub_id;
  } catch (const std::exception& e) {
    if (!st.failing) {
      logs::storage().warn("pub lookups failing, packets go unresolved id={} reason=\"{}\"", id,
                           logs::one_line(e.what()));
    }
    st.failing = true;
    st.failed_at = clock::now();
    st.store.reset();
    return caf::make_error(caf::sec::runtime_error, "pub lookup failed");
  }
}

caf::behavior catalog(catalog_actor* self, std::string conninfo, storage::pub_key key) {
  self->state.conninfo = std::move(conninfo);
  self->state.key = key;
  return {
      [self](lookup_atom, std::int32_t id) {
        const auto measured = self->state.probe.handle(self);
        return look_up(self, id);
      },
  };
}

}  // namespace

caf::actor spawn_pub_catalog(caf::actor_system& sys, const std::string& conninfo,
                             storage::pub_key key) {
  return sys.spawn<caf::detached>(catalog, conninfo, key);
}

}  // namespace locomov::actors
