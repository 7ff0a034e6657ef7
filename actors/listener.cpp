#include "actors/listener.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <sys/socket.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/connection_actor.hpp"
#include "actors/connection_events.hpp"
#include "actors/messages.hpp"
#include "common/log_limiter.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "net/acceptor.hpp"

namespace locomov::actors {
namespace {

// Connection ids are unique across listeners, so a log search by conn= finds
// one connection.
std::atomic<std::uint64_t> next_connection_id{1};

constexpr std::size_t read_chunk = 16 * 1024;

struct connection_entry {
  caf::actor actor;
  std::uint64_t id = 0;
  std::string peer;
  admission::ticket place;  // given back when the entry goes
  int fd = -1;              // the scribe's socket, owned by CAF
  bool handshaking = false;
};

struct listener_state {
  listener_settings settings;  // first: its admission outlives the tickets below
  connection_peers peers;
  std::unordered_map<caf::io::connection_handle, connection_entry> connections;
  // Connections still in their TLS handshake by id, so oldest first: what a
  // full server closes to make room. Scanners and stalled handshakes are
  // what fills a server; a device that finished its handshake is not touched.
  std::map<std::uint64_t, caf::io::connection_handle> handshaking;
  metrics::counter* accepted = nullptr;
  metrics::counter* refused_overall = nullptr;
  metrics::counter* refused_per_address = nullptr;
  metrics::counter* evicted = nullptr;
  std::shared_ptr<connection_events> events;  // for its connection actors
  bool draining = false;  // shutting down: the broker ends with its last connection
  logs::limiter keepalive_log;
  logs::limiter refused_overall_log;
  logs::limiter refused_per_address_log;
  logs::limiter evicted_log;
  actor_probe probe{name};
  // Last, so that it is destroyed first: accepting stops before anything
  // else of the listener goes.
  std::unique_ptr<net::acceptor> acceptor;
  static inline const char* name = "listener";

  ~listener_state() {
    if (acceptor) {
      acceptor.reset();
      logs::net().info("stopped accepting listener={}", settings.name);
    }
  }
};

using listener_broker = caf::stateful_actor<listener_state, caf::io::broker>;

/// The entry for `hdl`, if the message being handled came from its actor.
/// The multiplexer reuses a closed socket's handle for the next accepted
/// one, so a closed connection's actor may still be sending for a handle
/// that now belongs to another connection: those messages must be dropped.
connection_entry* owner_of(listener_broker* self, caf::io::connection_handle hdl) {
  auto it = self->state.connections.find(hdl);
  if (it == self->state.connections.end() ||
      caf::actor_cast<caf::actor>(self->current_sender()) != it->second.actor) {
    return nullptr;
  }
  return &it->second;
}

/// Drops the broker's record of a connection, giving back its place.
void forget(listener_broker* self, caf::io::connection_handle hdl) {
  auto& st = self->state;
  auto it = st.connections.find(hdl);
  if (it == st.connections.end()) {
    return;
  }
  self->unlink_from(it->second.actor);
  if (it->second.handshaking) {
    st.handshaking.erase(it->second.id);
  }
  st.connections.erase(it);
}

/// While draining, the broker ends once its last connection has gone.
void quit_if_drained(listener_broker* self) {
  if (self->state.draining && self->state.connections.empty()) {
    self->quit(caf::exit_reason::user_shutdown);
  }
}

/// Stops accepting and asks every connection to finish: answer what it
/// has read, then close. The broker ends once the last one has closed.
void drain(listener_broker* self) {
  auto& st = self->state;
  if (st.draining) {
    return;
  }
  st.draining = true;
  if (st.acceptor) {
    st.acceptor.reset();
    logs::net().info("stopped accepting listener={} connections={}", st.settings.name,
                     st.connections.size());
  }
  quit_if_drained(self);
  for (auto& [hdl, entry] : st.connections) {
    self->send(entry.actor, drain_atom::value);
  }
}

/// Closes this listener's oldest connection still in its TLS handshake, for
/// connection `for_id`; false when it has none.
bool make_room(listener_broker* self, std::uint64_t for_id) {
  auto& st = self->state;
  if (st.handshaking.empty()) {
    return false;
  }
  const auto hdl = st.handshaking.begin()->second;
  const auto& victim = st.connections.at(hdl);
  const int fd = victim.fd;
  st.evicted->inc();
  std::uint64_t suppressed = 0;
  if (st.evicted_log.allow(suppressed)) {
    logs::net().warn(
        "connection closed to make room conn={} peer={} listener={} reason=handshake_pending "
        "for_conn={} limit={} suppressed={}",
        victim.id, victim.peer, st.settings.name, for_id, st.settings.places->max_total(),
        suppressed);
  }
  self->send(victim.actor, peer_gone_atom::value);
  forget(self, hdl);
  // Not close(hdl): in a flood the victim may have been added in this same
  // turn of the multiplexer, and CAF 0.17 then folds the scribe's pending
  // add and close into nothing, leaking the scribe and its descriptor for
  // good. A socket shut down both ways reads as closed by the peer, which
  // CAF cleans up on its ordinary path once the scribe is in its loop.
  ::shutdown(fd, SHUT_RDWR);
  return true;
}

void refuse(listener_broker* self, std::uint64_t id, const std::string& peer,
            admission::verdict why) {
  auto& st = self->state;
  const bool overall = why == admission::verdict::overall_limit;
  auto& refused = overall ? *st.refused_overall : *st.refused_per_address;
  auto& log_limit = overall ? st.refused_overall_log : st.refused_per_address_log;
  const auto limit = overall ? st.settings.places->max_total()
                             : st.settings.places->max_per_address();
  refused.inc();
  std::uint64_t suppressed = 0;
  if (log_limit.allow(suppressed)) {
    logs::net().warn(
        "connection refused conn={} peer={} listener={} reason={} limit={} suppressed={}", id,
        peer, st.settings.name, overall ? "overall_limit" : "per_address_limit", limit,
        suppressed);
  }
}

/// Runs on the accept thread. The broker is held weakly: its own state owns
/// this handler, and a strong handle would keep a broker nobody references
/// alive forever. A connection accepted once the broker is gone closes here.
net::acceptor::handler hand_to(caf::actor_addr broker) {
  return [broker = std::move(broker)](net::accepted_connection c) {
    if (auto target = caf::actor_cast<caf::actor>(broker)) {
      caf::anon_send(target, adopt_atom::value,
                     std::make_shared<net::accepted_connection>(std::move(c)));
    }
  };
}

/// Hands an admitted socket to CAF and spawns its connection actor.
void serve(listener_broker* self, net::accepted_connection& accepted, connection_info info,
           admission::ticket place) {
  auto& st = self->state;
  info.listener = st.settings.name;
  info.kind = st.settings.kind;
  info.accepted_at = accepted.at;
  const int fd = accepted.fd.get();
  info.hdl = self->add_scribe(accepted.fd.release());
  // After add_scribe, which turns keepalive on at the system's timings.
  if (auto error = net::set_keepalive(fd, st.settings.keepalive); !error.empty()) {
    std::uint64_t suppressed = 0;
    if (st.keepalive_log.allow(suppressed)) {
      logs::net().warn("cannot set keepalive conn={} peer={} reason=\"{}\" suppressed={}",
                       info.id, info.peer, error, suppressed);
    }
  }
  logs::net().debug("connection accepted conn={} peer={} listener={}", info.id, info.peer,
                    info.listener);
  connection_entry entry;
  entry.id = info.id;
  entry.peer = info.peer;
  entry.place = std::move(place);
  entry.fd = fd;
  entry.handshaking = st.settings.tls != nullptr;
  const auto hdl = info.hdl;
  entry.actor = spawn_connection_actor(self->system(), caf::actor_cast<caf::actor>(self),
                                       std::move(info), st.settings.tls, st.settings.connection,
                                       st.peers, st.events);
  self->link_to(entry.actor);
  if (entry.handshaking) {
    st.handshaking.emplace(entry.id, hdl);
  }
  st.connections.emplace(hdl, std::move(entry));
  self->configure_read(hdl, caf::io::receive_policy::at_most(read_chunk));
}

void adopt(listener_broker* self, net::accepted_connection& accepted) {
  auto& st = self->state;
  st.accepted->inc();
  connection_info info;
  info.id = next_connection_id++;
  info.peer = accepted.peer.to_string();
  admission::ticket place;
  auto verdict = st.settings.places->admit(accepted.peer.address, place);
  if (verdict == admission::verdict::overall_limit && make_room(self, info.id)) {
    verdict = st.settings.places->admit(accepted.peer.address, place);
  }
  if (verdict != admission::verdict::admitted) {
    refuse(self, info.id, info.peer, verdict);
    accepted.fd.reset();
    return;
  }
  serve(self, accepted, std::move(info), std::move(place));
}

/// Takes what SIGHUP reloaded for the connections accepted from now on. The
/// plaintext listener stays plaintext.
bool reconfigure(listener_broker* self, const listener_update& update) {
  auto& st = self->state;
  const bool replaced = st.settings.tls != nullptr && st.settings.tls != update.tls;
  if (st.settings.tls != nullptr) {
    st.settings.tls = update.tls;
  }
  st.settings.connection = update.connection;
  st.settings.keepalive = update.keepalive;
  logs::net().debug("listener reconfigured listener={} tls_context={} connections={}",
                    st.settings.name, replaced ? "replaced" : "kept", st.connections.size());
  return true;
}

/// The listener's series, looked up once: a lookup takes the registry's lock.
void find_metrics(listener_state& st) {
  const auto listener = "listener=\"" + st.settings.name + "\"";
  st.accepted = &metrics::get_counter("locomov_connections_accepted_total", listener,
                                      "Connections taken off the listen queue");
  const char* refused = "Connections closed at once, by the limit they would exceed";
  st.refused_overall = &metrics::get_counter("locomov_connections_refused_total",
                                             listener + ",reason=\"overall_limit\"", refused);
  st.refused_per_address = &metrics::get_counter(
      "locomov_connections_refused_total", listener + ",reason=\"per_address_limit\"", refused);
  st.evicted = &metrics::get_counter("locomov_connections_evicted_total", listener,
                                     "Connections in their TLS handshake closed to make room");
}

caf::behavior listener_behavior(listener_broker* self, std::shared_ptr<net::unique_fd> listening,
                                listener_settings settings, connection_peers peers) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.peers = std::move(peers);
  st.events = std::make_shared<connection_events>(st.settings.name);
  find_metrics(st);
  st.acceptor = std::make_unique<net::acceptor>(st.settings.name, std::move(*listening),
                                                hand_to(self->address()));
  return {
      [self](adopt_atom, const accepted_ptr& accepted) {
        const auto measured = self->state.probe.handle(self);
        if (self->state.draining) {
          return;  // the accepted socket closes with the message
        }
        adopt(self, *accepted);
      },
      [self](ping_atom) {
        const auto measured = self->state.probe.handle(self);
        return ping_atom::value;
      },
      [self](drain_atom) {
        const auto measured = self->state.probe.handle(self);
        drain(self);
      },
      [self](reconfigure_atom, const listener_update& update) {
        const auto measured = self->state.probe.handle(self);
        return reconfigure(self, update);
      },
      [self](caf::io::new_data_msg& msg) {
        const auto measured = self->state.probe.handle(self);
        auto it = self->state.connections.find(msg.handle);
        if (it != self->state.connections.end()) {
          // Copied, not moved: the buffer belongs to the socket's read loop.
          self->send(it->second.actor, recv_atom::value, std::vector<char>(msg.buf));
        }
      },
      [self](const caf::io::connection_closed_msg& msg) {
        const auto measured = self->state.probe.handle(self);
        auto it = self->state.connections.find(msg.handle);
        if (it != self->state.connections.end()) {
          self->send(it->second.actor, peer_gone_atom::value);
          forget(self, msg.handle);
          quit_if_drained(self);
        }
      },
      [self](tls_done_atom, caf::io::connection_handle hdl) {
        const auto measured = self->state.probe.handle(self);
        if (auto* entry = owner_of(self, hdl); entry != nullptr && entry->handshaking) {
          entry->handshaking = false;
          self->state.handshaking.erase(entry->id);
        }
      },
      [self](out_atom, caf::io::connection_handle hdl, const std::vector<char>& bytes) {
        const auto measured = self->state.probe.handle(self);
        if (owner_of(self, hdl) != nullptr) {
          self->write(hdl, bytes.size(), bytes.data());
          self->flush(hdl);
        }
      },
      [self](close_atom, caf::io::connection_handle hdl) {
        const auto measured = self->state.probe.handle(self);
        if (owner_of(self, hdl) != nullptr) {
          forget(self, hdl);
          // Written bytes are flushed before the socket closes.
          self->close(hdl);
          quit_if_drained(self);
        }
      },
      [self](halt_atom, caf::io::connection_handle hdl) {
        const auto measured = self->state.probe.handle(self);
        if (owner_of(self, hdl) != nullptr) {
          self->halt(hdl);
        }
      },
      [self](resume_atom, caf::io::connection_handle hdl) {
        const auto measured = self->state.probe.handle(self);
        if (owner_of(self, hdl) != nullptr) {
          self->trigger(hdl);
        }
      },
  };
}

}  // namespace

listener start_listener(caf::actor_system& sys, const listener_settings& settings,
                        const connection_peers& peers) {
  if (!settings.places) {
    throw std::logic_error("start_listener: listener_settings.places is null");
  }
  auto listening = std::make_shared<net::unique_fd>();
  try {
    *listening = net::listen_tcp(settings.host, settings.port);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot listen on " + settings.host + ":" +
                             std::to_string(settings.port) + " for the " + settings.name +
                             " port: " + e.what());
  }
  listener result;
  result.port = net::local_port(listening->get());
  result.broker = sys.middleman().spawn_broker(listener_behavior, listening, settings, peers);
  return result;
}

}  // namespace locomov::actors
