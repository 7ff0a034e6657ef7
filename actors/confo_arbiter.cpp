#include "actors/confo_arbiter.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <string>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/messages.hpp"
#include "actors/stop_flag.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "storage/confo_store.hpp"
#include "storage/retry_policy.hpp"

namespace locomov::actors {
namespace {

using clock = std::chrono::steady_clock;

struct arbiter_state {
  confo_settings settings;
  caf::actor registry;
  stop_flag stopping;
  bool gave_up_at_shutdown = false;  // the rest of the queue is answered at once
  std::unique_ptr<storage::confo_store> store;
  actor_probe probe{name};
  static inline const char* name = "confo-arbiter";
};

storage::confo_store& connected(std::unique_ptr<storage::confo_store>& store,
                                const confo_settings& settings) {
  if (!store || !store->connected()) {
    store.reset();
    store = std::make_unique<storage::confo_store>(settings.conninfo, settings.write_timeout);
  }
  return *store;
}

/// Committed decisions per branch of the tree.
metrics::counter& decisions(storage::confo_branch branch) {
  static const auto all = [] {
    constexpr auto last = static_cast<int>(storage::confo_branch::csub_no_pub);
    std::array<metrics::counter*, last + 1> counters{};
    for (int b = 0; b <= last; ++b) {
      counters[b] = &metrics::get_counter(
          "locomov_confo_decisions_total",
          std::string("branch=\"") + storage::branch_name(static_cast<storage::confo_branch>(b)) +
              "\"",
          "Confos decided and committed, by branch of the decision tree");
    }
    return counters;
  }();
  return *all[static_cast<int>(branch)];
}

/// Confos answered !OK although they were valid, by why.
metrics::counter& undecided(const char* reason) {
  return metrics::get_counter("locomov_confo_undecided_total",
                              std::string("reason=\"") + reason + "\"",
                              "Valid confos not decided (answered !OK), by reason");
}

std::string outcome_of(const storage::confo_decision& d) {
  std::string outcome = d.conflict ? "saved in cconfo" : "saved in confo";
  if (d.pub_created) {
    outcome += ", pub created pub_id=" + std::to_string(d.pub_id);
  } else if (d.creator_changed) {
    outcome += d.branch == storage::confo_branch::sub_pub_claimed ? ", creator set"
                                                                  : ", dangling creator cleared";
  }
  return outcome;
}

/// Runs one decision to its commit, retrying it whole on a new connection
/// while the database is unreachable or the transaction was rolled back
/// (deadlock, serialization); false when it never committed or the database
/// refused it.
bool decide(caf::stateful_actor<arbiter_state>* self, const protocol::confo& c) {
  auto& st = self->state;
  if (st.gave_up_at_shutdown) {
    undecided("shutting_down").inc();
    return false;
  }
  const auto give_up_at = clock::now() + st.settings.retry_for;
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    try {
      const auto d = connected(st.store, st.settings).decide(c);
      logs::actors().info(
          "confo decided device_name=\"{}\" ssid=\"{}\" hash={} branch={} outcome=\"{}\"",
          c.device_name, c.ssid, c.hash, storage::branch_name(d.branch), outcome_of(d));
      decisions(d.branch).inc();
      if (d.pub_created) {
        const auto id = st.settings.key == storage::pub_key::pub_id ? d.pub_id : c.hash;
        self->send(st.registry, pub_known_atom::value, id, d.pub_id);
      }
      return true;
    } catch (const std::exception& e) {
      switch (storage::classify(e)) {
        case storage::db_failure::in_doubt:
          // It may have committed; a device that gets !OK posts again, which
          // at worst saves the confo twice and never creates a second pub.
          logs::actors().error("confo commit outcome unknown device_name=\"{}\" reason=\"{}\"",
                               c.device_name, logs::one_line(e.what()));
          undecided("commit_in_doubt").inc();
          st.store.reset();
          return false;
        case storage::db_failure::refused:
          logs::actors().warn("confo refused by the database device_name=\"{}\" reason=\"{}\"",
                              c.device_name, logs::one_line(e.what()));
          undecided("refused_by_database").inc();
          return false;
        case storage::db_failure::transient:
          logs::actors().warn("confo decision failed, retrying device_name=\"{}\" reason=\"{}\"",
                              c.device_name, logs::one_line(e.what()));
          st.store.reset();
          break;
      }
    }
    if (clock::now() + backoff > give_up_at) {
      logs::actors().error("giving up on confo device_name=\"{}\" ssid=\"{}\" after={}ms",
                           c.device_name, c.ssid, st.settings.retry_for.count());
      undecided("database_unreachable").inc();
      return false;
    }
    // Detached actor: sleeping holds back only the confos queued behind this
    // one, which must wait anyway to be decided in arrival order. At shutdown
    // each queued confo gets one attempt, so the bound on stopping holds.
    if (!pause_unless_stopping(backoff, *st.stopping)) {
      logs::actors().warn("confo not decided, shutting down device_name=\"{}\" ssid=\"{}\"",
                          c.device_name, c.ssid);
      st.gave_up_at_shutdown = true;
      undecided("shutting_down").inc();
      return false;
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

caf::behavior arbiter(caf::stateful_actor<arbiter_state>* self, confo_settings settings,
                      caf::actor registry, stop_flag stopping) {
  self->state.settings = std::move(settings);
  self->state.registry = std::move(registry);
  self->state.stopping = std::move(stopping);
  // Every branch's counter exists from the start, so scrapes show zeros.
  decisions(storage::confo_branch::sub_pub_own);
  return {
      [self](decide_atom, const protocol::confo& c) {
        const auto measured = self->state.probe.handle(self);
        return decide(self, c);
      },
  };
}

struct query_state {
  confo_settings settings;
  std::unique_ptr<storage::confo_store> store;
  actor_probe probe{name};
  static inline const char* name = "confo-query";
};

caf::behavior query(caf::stateful_actor<query_state>* self, confo_settings settings) {
  self->state.settings = std::move(settings);
  return {
      [self](query_atom, const std::string& device_name,
             const std::string& ssid) -> caf::result<bool, std::int32_t> {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        // One retry on a fresh connection covers a restarted database; the
        // app asks again anyway when it gets an error.
        for (int attempt = 0; attempt < 2; ++attempt) {
          try {
            const auto hash = connected(st.store, st.settings).last_hash(device_name, ssid);
            return {hash.has_value(), hash.value_or(0)};
          } catch (const std::exception& e) {
            logs::actors().warn("confo query failed attempt={} reason=\"{}\"", attempt + 1,
                                logs::one_line(e.what()));
            // The database refusing the question is no lost connection: asking
            // again would get the same answer.
            if (storage::classify(e) == storage::db_failure::refused) {
              break;
            }
            st.store.reset();
          }
        }
        return caf::make_error(caf::sec::runtime_error, "confo query failed");
      },
  };
}

}  // namespace

caf::actor spawn_confo_arbiter(caf::actor_system& sys, const confo_settings& settings,
                               caf::actor registry, stop_flag stopping) {
  return sys.spawn<caf::detached>(arbiter, settings, std::move(registry), std::move(stopping));
}

caf::actor spawn_confo_query(caf::actor_system& sys, const confo_settings& settings) {
  return sys.spawn<caf::detached>(query, settings);
}

}  // namespace locomov::actors
