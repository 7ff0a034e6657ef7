#include "actors/actor_probe.hpp"

#include <map>
#include <mutex>
#include <string>

#include "common/metrics.hpp"

namespace locomov::actors {

kind_metrics& metrics_for(const char* kind) {
  static std::mutex m;
  // Leaked on purpose, as the metrics registry: actors may still end while
  // statics are destroyed.
  static auto* kinds = new std::map<std::string, kind_metrics, std::less<>>;
  std::lock_guard lock(m);
  auto [it, added] = kinds->try_emplace(kind);
  if (added) {
    const auto label = std::string("kind=\"") + kind + "\"";
    auto& k = it->second;
    k.alive = &metrics::get_gauge("locomov_actors_alive", label, "Actors alive, by kind");
    k.messages = &metrics::get_counter("locomov_actor_messages_total", label,
                                       "Messages handled by actors, by kind");
    k.waiting = &metrics::get_gauge("locomov_actor_mailbox_depth", label,
                                    "Messages waiting in the mailboxes of a kind of actor, as "
                                    "each last saw its own");
    k.peak = &metrics::get_gauge("locomov_actor_mailbox_depth_peak", label,
                                 "Deepest mailbox one actor of the kind has had since start");
    k.seconds =
        &metrics::get_histogram("locomov_actor_message_seconds", label, metrics::seconds_buckets(),
                                "Time an actor spent on one message, by kind");
  }
  return it->second;
}

actor_probe::actor_probe(const char* kind) : metrics_(metrics_for(kind)) { metrics_.alive->add(1); }

actor_probe::~actor_probe() {
  metrics_.alive->sub(1);
  metrics_.waiting->sub(waiting_);
}

actor_probe::measure::measure(actor_probe& probe, std::size_t waiting)
    : probe_(probe), start_(std::chrono::steady_clock::now()) {
  const auto now = static_cast<std::int64_t>(waiting);
  if (now == probe_.waiting_) {
    return;  // most messages find the mailbox as the last one did
  }
  auto& m = probe_.metrics_;
  m.waiting->add(now - probe_.waiting_);
  probe_.waiting_ = now;
  m.peak->raise_to(now);
}

actor_probe::measure::~measure() {
  auto& m = probe_.metrics_;
  m.messages->inc();
  m.seconds->observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

}  // namespace locomov::actors
