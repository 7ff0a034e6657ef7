#include "actors/writer_actor.hpp"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "common/logging.hpp"
#include "storage/retry_policy.hpp"

namespace locomov::actors {
namespace {

using clock = std::chrono::steady_clock;

struct writer_state {
  writer_settings settings;
  int index = 0;
  std::unique_ptr<storage::packet_store> store;
  std::vector<storage::stored_packet> rows;
  std::vector<std::pair<caf::actor, std::uint64_t>> acks;
  std::uint64_t generation = 0;  // identifies the batch a flush timer was armed for
  bool timer_armed = false;
  static inline const char* name = "writer";
};

using writer_actor = caf::stateful_actor<writer_state>;

storage::packet_store& connected_store(writer_state& st) {
  if (!st.store || !st.store->connected()) {
    st.store.reset();
    st.store = std::make_unique<storage::packet_store>(st.settings.conninfo);
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

void flush(writer_actor* self) {
  auto& st = self->state;
  ++st.generation;
  st.timer_armed = false;
  if (st.rows.empty()) {
    return;
  }

  auto give_up_at = clock::now() + st.settings.retry_for;
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    try {
      const auto result = connected_store(st).write(st.rows);
      if (result.vanished_pub > 0) {
        logs::storage().warn("pub vanished, packets quarantined writer={} rows={}", st.index,
                             result.vanished_pub);
      }
      logs::storage().debug("batch committed writer={} rows={} packet={} quarantine={} "
                            "duplicates={}",
                            st.index, st.rows.size(), result.packets, result.quarantined,
                            result.duplicates);
      answer_all(self, stored_atom::value);
      return;
    } catch (const std::exception& e) {
      switch (storage::classify(e)) {
        case storage::db_failure::in_doubt:
          // Writing the batch again is safe: whatever that commit stored
          // comes back as duplicates, so the retry settles the outcome.
          logs::storage().warn("commit outcome unknown, retrying writer={} rows={} "
                               "reason=\"{}\"",
                               st.index, st.rows.size(), logs::one_line(e.what()));
          st.store.reset();
          break;
        case storage::db_failure::refused:
          logs::storage().error("batch refused writer={} rows={} reason=\"{}\"", st.index,
                                st.rows.size(), logs::one_line(e.what()));
          answer_all(self, failed_atom::value);
          return;
        case storage::db_failure::transient:
          logs::storage().warn("batch failed, retrying writer={} reason=\"{}\"", st.index,
                               logs::one_line(e.what()));
          st.store.reset();
          break;
      }
    }
    if (clock::now() + backoff > give_up_at) {
      logs::storage().error("giving up on batch writer={} rows={} after={}ms", st.index,
                            st.rows.size(), st.settings.retry_for.count());
      answer_all(self, failed_atom::value);
      return;
    }
    // The writer owns its thread (spawned detached), so sleeping here delays
    // only its own queue, which is what we want while the database is away.
    std::this_thread::sleep_for(backoff);
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

caf::behavior writer(writer_actor* self, writer_settings settings, int index) {
  self->state.settings = std::move(settings);
  self->state.index = index;
  self->state.rows.reserve(self->state.settings.batch_max);
  self->state.acks.reserve(self->state.settings.batch_max);
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    // Commit what is queued before going: these packets were already read.
    flush(self);
    self->quit(msg.reason);
  });
  return {
      [self](write_msg& msg) {
        auto& st = self->state;
        st.rows.push_back(std::move(msg.packet));
        st.acks.emplace_back(std::move(msg.reply_to), msg.seq);
        flush_if_due(self);
      },
      [self](flush_atom, std::uint64_t generation) {
        if (generation == self->state.generation) {
          flush(self);
        }
      },
  };
}

struct catalog_state {
  writer_settings settings;
  storage::pub_key key = storage::pub_key::pub_id;
  std::unique_ptr<storage::packet_store> store;
  static inline const char* name = "pub-catalog";
};

caf::behavior catalog(caf::stateful_actor<catalog_state>* self, writer_settings settings,
                      storage::pub_key key) {
  self->state.settings = std::move(settings);
  self->state.key = key;
  return {
      [self](lookup_atom, std::int32_t id) -> caf::result<std::int32_t> {
        auto& st = self->state;
        for (int attempt = 0; attempt < 2; ++attempt) {
          try {
            if (!st.store || !st.store->connected()) {
              st.store = std::make_unique<storage::packet_store>(st.settings.conninfo);
            }
            return st.store->find_pub(st.key, id).value_or(0);
          } catch (const std::exception& e) {
            logs::storage().warn("pub lookup failed id={} attempt={} reason=\"{}\"", id,
                                 attempt + 1, logs::one_line(e.what()));
            st.store.reset();
          }
        }
        return caf::make_error(caf::sec::runtime_error, "pub lookup failed");
      },
  };
}

}  // namespace

caf::actor spawn_writer(caf::actor_system& sys, const writer_settings& settings, int index) {
  return sys.spawn<caf::detached>(writer, settings, index);
}

caf::actor spawn_catalog(caf::actor_system& sys, const writer_settings& settings,
                         storage::pub_key key) {
  return sys.spawn<caf::detached>(catalog, settings, key);
}

}  // namespace locomov::actors
