#include "actors/writer_actor.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/messages.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "storage/retry_policy.hpp"
#include "storage/spool.hpp"

namespace locomov::actors {
namespace {

using clock = std::chrono::steady_clock;

/// A failure that came this quickly (a connection found dead) is worth one
/// immediate retry on a new connection before the batch goes to the spool;
/// one that took longer (a timeout) is not.
constexpr std::chrono::seconds fast_failure{1};

struct writer_metrics {
  metrics::counter& committed = metrics::get_counter(
      "locomov_writer_packets_total", "outcome=\"committed\"", "Packets written by writers");
  metrics::counter& duplicates = metrics::get_counter(
      "locomov_writer_packets_total", "outcome=\"duplicate\"");
  metrics::counter& spooled = metrics::get_counter(
      "locomov_writer_packets_total", "outcome=\"spooled\"");
  metrics::counter& failed = metrics::get_counter(
      "locomov_writer_packets_total", "outcome=\"failed\"");
  metrics::counter& errors = metrics::get_counter(
      "locomov_writer_errors_total", "", "Failed database attempts of writers");
  metrics::counter& spool_full = metrics::get_counter(
      "locomov_spool_refusals_total", "", "Batches the spool could not take (full or disk error)");
  metrics::counter& quarantined = metrics::get_counter(
      "locomov_packets_quarantined_total", "",
      "Packets committed to quarantine, their pub unknown (also counted as committed)");
  metrics::counter& reconnects =
      metrics::get_counter("locomov_writer_reconnects_total", "",
                           "Database connections writers opened again after losing one");
  metrics::histogram& batch_rows = metrics::get_histogram(
      "locomov_writer_batch_rows", "", {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000},
      "Packets per batch committed by writers");
  metrics::histogram& commit_seconds = metrics::get_histogram(
      "locomov_writer_commit_seconds", "", metrics::seconds_buckets(),
      "Time from a batch's first statement to its commit, for committed batches");
};

writer_metrics& counters() {
  static writer_metrics m;
  return m;
}

struct writer_state {
  writer_settings settings;
  int index = 0;
  stop_flag stopping;
  std::unique_ptr<storage::packet_store> store;
  std::vector<storage::stored_packet> rows;
  std::vector<std::pair<caf::actor, std::uint64_t>> acks;
  std::uint64_t generation = 0;  // identifies the batch a flush timer was armed for
  bool timer_armed = false;
  bool spooling = false;  // the last batch went to the spool; logged once per episode
  bool ever_connected = false;
  actor_probe probe{name};
  static inline const char* name = "writer";
};

using writer_actor = caf::stateful_actor<writer_state>;

storage::packet_store& connected_store(writer_state& st) {
  if (!st.store || !st.store->connected()) {
    if (st.ever_connected) {
      counters().reconnects.inc();
    }
    st.ever_connected = true;
    st.store.reset();
    st.store = std::make_unique<storage::packet_store>(st.settings.conninfo,
                                                       st.settings.write_timeout);
    logs::storage().info("writer connected writer={}", st.index);
  }
  return *st.store;
}

template <class Atom>
void answer_all(writer_actor* self, Atom atom) {
  auto& st = self->state;
  for (auto& [target, seq] : st.acks) {
    self->send(target, atom, seq);
  }
  st.rows.clear();
  st.acks.clear();
}

/// Commits the batch; throws what the database threw.
void commit(writer_state& st) {
  auto& store = connected_store(st);
  const auto started = clock::now();
  store.resolve(st.rows);
  const auto result = store.write(st.rows);
  counters().commit_seconds.observe(std::chrono::duration<double>(clock::now() - started).count());
  counters().batch_rows.observe(static_cast<double>(st.rows.size()));
  if (result.vanished_pub > 0) {
    logs::storage().warn("pub vanished, packets quarantined writer={} rows={}", st.index,
                         result.vanished_pub);
  }
  logs::storage().debug("batch committed writer={} rows={} packet={} quarantine={} duplicates={}",
                        st.index, st.rows.size(), result.packets, result.quarantined,
                        result.duplicates);
  counters().committed.inc(result.packets + result.quarantined);
  counters().quarantined.inc(result.quarantined);
  counters().duplicates.inc(result.duplicates);
  if (st.spooling) {
    st.spooling = false;
    logs::storage().info("database takes batches again writer={}", st.index);
  }
}

/// Appends the batch to the spool and acknowledges it; false when there is
/// no spool or it cannot take the batch.
bool spool_batch(writer_actor* self, const char* why) {
  auto& st = self->state;
  if (!st.settings.spool) {
    return false;
  }
  try {
    if (!st.settings.spool->append(st.rows)) {
      counters().spool_full.inc();
      logs::storage().error("spool full, batch not spooled writer={} rows={} spool_bytes={}",
                            st.index, st.rows.size(), st.settings.spool->bytes());
      return false;
    }
  } catch (const std::exception& e) {
    counters().spool_full.inc();
    logs::storage().error("spool write failed writer={} rows={} reason=\"{}\"", st.index,
                          st.rows.size(), e.what());
    return false;
  }
  if (!st.spooling) {
    st.spooling = true;
    logs::storage().warn("batches go to the spool writer={} reason=\"{}\"", st.index, why);
  }
  logs::storage().debug("batch spooled writer={} rows={} spool_rows={}", st.index, st.rows.size(),
                        st.settings.spool->rows());
  counters().spooled.inc(st.rows.size());
  answer_all(self, stored_atom::value);
  return true;
}

void give_up(writer_actor* self, const char* why) {
  auto& st = self->state;
  logs::storage().error("batch not stored, packets not acknowledged writer={} rows={} "
                        "reason=\"{}\"",
                        st.index, st.rows.size(), why);
  counters().failed.inc(st.rows.size());
  answer_all(self, failed_atom::value);
}

void flush(writer_actor* self) {
  auto& st = self->state;
  ++st.generation;
  st.timer_armed = false;
  if (st.rows.empty()) {
    return;
  }

  // Behind packets already spooled, a batch joins them, so that the
  // database receives everything in the order it was read.
  if (st.settings.spool && st.settings.spool->rows() > 0 &&
      spool_batch(self, "the spool holds earlier packets")) {
    return;
  }

  const auto give_up_at = clock::now() + st.settings.retry_for;
  auto backoff = std::chrono::milliseconds(50);
  bool retried_at_once = false;
  for (;;) {
    const auto started = clock::now();
    std::string reason;
    try {
      commit(st);
      answer_all(self, stored_atom::value);
      return;
    } catch (const std::exception& e) {
      counters().errors.inc();
      reason = logs::one_line(e.what());
      const auto failure = storage::classify(e);
      if (failure == storage::db_failure::refused) {
        give_up(self, reason.c_str());
        return;
      }
      // In doubt or transient: the batch may be written again, since the
      // keys turn whatever a lost commit stored into duplicates.
      logs::storage().warn("batch failed writer={} rows={} reason=\"{}\"", st.index,
                           st.rows.size(), reason);
      st.store.reset();
    }
    if (!retried_at_once && clock::now() - started < fast_failure && !st.stopping->load()) {
      retried_at_once = true;
      continue;
    }
    if (spool_batch(self, reason.c_str())) {
      return;
    }
    if (clock::now() + backoff > give_up_at || st.stopping->load()) {
      give_up(self, reason.c_str());
      return;
    }
    // The writer owns its thread (spawned detached), so pausing here delays
    // only its own queue; the connections it owes replies stop reading.
    if (!pause_unless_stopping(backoff, *st.stopping)) {
      give_up(self, "shutting down");
      return;
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

// Flushes when the batch is full, or when nothing else is queued and the
// configured wait is zero; otherwise a timer bounds how long the batch waits.
void flush_if_due(writer_actor* self) {
  auto& st = self->state;
  if (st.rows.empty()) {
    return;
  }
  bool full = st.rows.size() >= st.settings.batch_max;
  bool idle = st.settings.batch_wait.count() == 0 && self->mailbox().empty();
  if (full || idle) {
    flush(self);
    return;
  }
  if (!st.timer_armed) {
    st.timer_armed = true;
    auto wait = std::max(st.settings.batch_wait, std::chrono::milliseconds(1));
    self->delayed_send(self, wait, flush_atom::value, st.generation);
  }
}

caf::behavior writer(writer_actor* self, writer_settings settings, int index,
                     stop_flag stopping) {
  self->state.settings = std::move(settings);
  self->state.index = index;
  self->state.stopping = std::move(stopping);
  self->state.rows.reserve(self->state.settings.batch_max);
  self->state.acks.reserve(self->state.settings.batch_max);
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    // Commit (or spool) what is queued before going: these packets were read.
    flush(self);
    self->quit(msg.reason);
  });
  return {
      [self](write_msg& msg) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        st.rows.push_back(std::move(msg.packet));
        st.acks.emplace_back(std::move(msg.reply_to), msg.seq);
        flush_if_due(self);
      },
      [self](flush_atom, std::uint64_t generation) {
        const auto measured = self->state.probe.handle(self);
        if (generation == self->state.generation) {
          flush(self);
        }
      },
  };
}

}  // namespace

caf::actor spawn_writer(caf::actor_system& sys, const writer_settings& settings, int index,
                        stop_flag stopping) {
  return sys.spawn<caf::detached>(writer, settings, index, std::move(stopping));
}

}  // namespace locomov::actors
