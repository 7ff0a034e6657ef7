#include "actors/spool_drainer.hpp"

#include <algorithm>
#include <chrono>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/messages.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "storage/packet_store.hpp"
#include "storage/spool.hpp"

namespace locomov::actors {
namespace {

using namespace std::chrono_literals;

/// Rows per drain transaction: large enough for COPY to run near its
/// ceiling, small enough that a retry after a failure repeats little.
constexpr std::size_t drain_rows = 5000;

/// How often an empty spool is looked at.
constexpr auto idle_poll = 200ms;

constexpr auto max_backoff = 5s;

struct drainer_metrics {
  metrics::counter& drained = metrics::get_counter(
      "locomov_spool_drained_packets_total", "", "Packets moved from the spool into the database");
  metrics::gauge& rows =
      metrics::get_gauge("locomov_spool_packets", "", "Packets waiting in the spool");
  metrics::gauge& bytes =
      metrics::get_gauge("locomov_spool_bytes", "", "Size of the spool's files");
};

drainer_metrics& gauges() {
  static drainer_metrics m;
  return m;
}

struct drainer_state {
  std::string conninfo;
  std::chrono::milliseconds write_timeout{};
  std::shared_ptr<storage::spool> spool;
  stop_flag stopping;
  std::unique_ptr<storage::packet_store> store;
  std::chrono::milliseconds backoff = 250ms;
  bool draining = false;  ///< inside an episode of non-empty spool; logged at its ends
  bool failing = false;
  actor_probe probe{name};
  static inline const char* name = "spool-drainer";
};

using drainer_actor = caf::stateful_actor<drainer_state>;

/// Moves one chunk; returns how long to wait before the next.
std::chrono::milliseconds drain_once(drainer_actor* self) {
  auto& st = self->state;
  gauges().rows.set(static_cast<std::int64_t>(st.spool->rows()));
  gauges().bytes.set(static_cast<std::int64_t>(st.spool->bytes()));
  if (st.spool->rows() == 0) {
    if (st.draining) {
      st.draining = false;
      logs::storage().info("spool drained");
    }
    return idle_poll;
  }
  if (!st.draining) {
    st.draining = true;
    logs::storage().info("draining spool packets={} bytes={}", st.spool->rows(),
                         st.spool->bytes());
  }
  try {
    auto batch = st.spool->read(drain_rows);
    if (!st.store || !st.store->connected()) {
      st.store = std::make_unique<storage::packet_store>(st.conninfo, st.write_timeout);
    }
    st.store->resolve(batch.packets);
    const auto result = st.store->write(batch.packets);
    st.spool->consume(batch.mark);
    gauges().drained.inc(batch.packets.size());
    logs::storage().debug("spool chunk stored rows={} duplicates={} left={}",
                          batch.packets.size(), result.duplicates, st.spool->rows());
    if (st.failing) {
      st.failing = false;
      logs::storage().info("spool draining resumed");
    }
    st.backoff = 250ms;
    return 0ms;
  } catch (const std::exception& e) {
    // A chunk the database refuses stays first in line: nothing acknowledged
    // is dropped, and the error is repeated in the log until someone looks.
    if (!st.failing || st.backoff >= max_backoff) {
      logs::storage().warn("spool draining failed, retrying in={}ms reason=\"{}\"",
                           st.backoff.count(), logs::one_line(e.what()));
    }
    st.failing = true;
    st.store.reset();
    const auto wait = st.backoff;
    st.backoff = std::min<std::chrono::milliseconds>(st.backoff * 2, max_backoff);
    return wait;
  }
}

caf::behavior drainer(drainer_actor* self, std::string conninfo,
                      std::chrono::milliseconds write_timeout,
                      std::shared_ptr<storage::spool> spool, stop_flag stopping) {
  auto& st = self->state;
  st.conninfo = std::move(conninfo);
  st.write_timeout = write_timeout;
  st.spool = std::move(spool);
  st.stopping = std::move(stopping);
  self->send(self, flush_atom::value);
  return {
      [self](flush_atom) {
        const auto measured = self->state.probe.handle(self);
        if (self->state.stopping->load()) {
          return;
        }
        const auto wait = drain_once(self);
        if (wait.count() == 0) {
          self->send(self, flush_atom::value);
        } else {
          self->delayed_send(self, wait, flush_atom::value);
        }
      },
  };
}

}  // namespace

caf::actor spawn_spool_drainer(caf::actor_system& sys, const std::string& conninfo,
                               std::chrono::milliseconds write_timeout,
                               std::shared_ptr<storage::spool> spool, stop_flag stopping) {
  return sys.spawn<caf::detached>(drainer, conninfo, write_timeout, std::move(spool),
                                  std::move(stopping));
}

}  // namespace locomov::actors
