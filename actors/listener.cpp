#include "actors/listener.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/connection_actor.hpp"
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

struct listener_state {
  listener_settings settings;
  connection_peers peers;
  std::unordered_map<caf::io::connection_handle, caf::actor> connections;
  metrics::counter* accepted = nullptr;
  logs::limiter keepalive_log;
  // Last, so that it is destroyed first: accepting stops before anything
  // else of the listener goes.
  std::unique_ptr<net::acceptor> acceptor;
  static inline const char* name = "listener";
};

using listener_broker = caf::stateful_actor<listener_state, caf::io::broker>;

/// The entry for `hdl`, if the message being handled came from its actor.
/// The multiplexer reuses a closed socket's handle for the next accepted
/// one, so a closed connection's actor may still be sending for a handle
/// that now belongs to another connection: those messages must be dropped.
const caf::actor* owner_of(listener_broker* self, caf::io::connection_handle hdl) {
  auto it = self->state.connections.find(hdl);
  if (it == self->state.connections.end() ||
      caf::actor_cast<caf::actor>(self->current_sender()) != it->second) {
    return nullptr;
  }
  return &it->second;
}

/// Runs on the accept thread.
net::acceptor::handler hand_to(caf::actor broker) {
  return [broker = std::move(broker)](net::accepted_connection c) {
    caf::anon_send(broker, adopt_atom::value,
                   std::make_shared<net::accepted_connection>(std::move(c)));
  };
}

void adopt(listener_broker* self, net::accepted_connection& accepted) {
  auto& st = self->state;
  connection_info info;
  info.id = next_connection_id++;
  info.peer = accepted.peer.to_string();
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
  st.accepted->inc();
  logs::net().debug("connection accepted conn={} peer={} listener={}", info.id, info.peer,
                    info.listener);
  const auto hdl = info.hdl;
  auto conn = spawn_connection_actor(self->system(), caf::actor_cast<caf::actor>(self),
                                     std::move(info), st.settings.tls, st.settings.connection,
                                     st.peers);
  self->link_to(conn);
  st.connections.emplace(hdl, std::move(conn));
  self->configure_read(hdl, caf::io::receive_policy::at_most(read_chunk));
}

caf::behavior listener_behavior(listener_broker* self, std::shared_ptr<net::unique_fd> listening,
                                listener_settings settings, connection_peers peers) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.peers = std::move(peers);
  st.accepted = &metrics::get_counter("locomov_connections_accepted_total",
                                      "listener=\"" + st.settings.name + "\"",
                                      "Connections taken off the listen queue");
  st.acceptor = std::make_unique<net::acceptor>(
      st.settings.name, std::move(*listening),
      hand_to(caf::actor_cast<caf::actor>(self)));
  return {
      [self](adopt_atom, const accepted_ptr& accepted) { adopt(self, *accepted); },
      [self](caf::io::new_data_msg& msg) {
        auto it = self->state.connections.find(msg.handle);
        if (it != self->state.connections.end()) {
          // Copied, not moved: the buffer belongs to the socket's read loop.
          self->send(it->second, recv_atom::value, std::vector<char>(msg.buf));
        }
      },
      [self](const caf::io::connection_closed_msg& msg) {
        auto it = self->state.connections.find(msg.handle);
        if (it != self->state.connections.end()) {
          self->send(it->second, peer_gone_atom::value);
          self->unlink_from(it->second);
          self->state.connections.erase(it);
        }
      },
      [self](out_atom, caf::io::connection_handle hdl, const std::vector<char>& bytes) {
        if (owner_of(self, hdl) != nullptr) {
          self->write(hdl, bytes.size(), bytes.data());
          self->flush(hdl);
        }
      },
      [self](close_atom, caf::io::connection_handle hdl) {
        if (const auto* conn = owner_of(self, hdl)) {
          self->unlink_from(*conn);
          self->state.connections.erase(hdl);
          // Written bytes are flushed before the socket closes.
          self->close(hdl);
        }
      },
      [self](halt_atom, caf::io::connection_handle hdl) {
        if (owner_of(self, hdl) != nullptr) {
          self->halt(hdl);
        }
      },
      [self](resume_atom, caf::io::connection_handle hdl) {
        if (owner_of(self, hdl) != nullptr) {
          self->trigger(hdl);
        }
      },
  };
}

}  // namespace

listener start_listener(caf::actor_system& sys, const listener_settings& settings,
                        const connection_peers& peers) {
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
