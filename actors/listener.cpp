#include "actors/listener.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/connection_actor.hpp"
#include "actors/messages.hpp"
#include "common/logging.hpp"

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

caf::behavior listener_behavior(listener_broker* self, caf::io::doorman_ptr doorman,
                                listener_settings settings, connection_peers peers) {
  self->add_doorman(std::move(doorman));
  self->state.settings = std::move(settings);
  self->state.peers = std::move(peers);
  return {
      [self](const caf::io::new_connection_msg& msg) {
        auto& st = self->state;
        connection_info info;
        info.hdl = msg.handle;
        info.id = next_connection_id++;
        info.peer = self->remote_addr(msg.handle) + ":" +
                    std::to_string(self->remote_port(msg.handle));
        info.listener = st.settings.name;
        info.kind = st.settings.kind;
        logs::net().debug("connection accepted conn={} peer={} listener={}", info.id, info.peer,
                          info.listener);
        auto conn = spawn_connection_actor(self->system(), caf::actor_cast<caf::actor>(self),
                                           std::move(info), st.settings.tls,
                                           st.settings.connection, st.peers);
        self->link_to(conn);
        st.connections.emplace(msg.handle, std::move(conn));
        self->configure_read(msg.handle, caf::io::receive_policy::at_most(read_chunk));
      },
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
      [self](const caf::io::acceptor_closed_msg&) {
        logs::net().error("listener socket closed listener={}", self->state.settings.name);
      },
  };
}

/// CAF reports a failed bind only as "tcp socket creation failed"; binding
/// once more by hand recovers the system's reason ("Address already in use").
std::string bind_failure_reason(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const auto service = std::to_string(port);
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints,
                                 &found);
      rc != 0) {
    return gai_strerror(rc);
  }
  std::string reason;
  for (auto* ai = found; ai != nullptr && reason.empty(); ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      break;
    }
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      reason = std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(found);
  return reason;
}

}  // namespace

listener start_listener(caf::actor_system& sys, const listener_settings& settings,
                        const connection_peers& peers) {
  auto& mm = sys.middleman();
  const char* host = settings.host.empty() ? nullptr : settings.host.c_str();
  auto doorman = mm.backend().new_tcp_doorman(settings.port, host, true);
  if (!doorman) {
    auto reason = bind_failure_reason(settings.host, settings.port);
    if (reason.empty()) {
      reason = sys.render(doorman.error());
    }
    throw std::runtime_error("cannot listen on " + settings.host + ":" +
                             std::to_string(settings.port) + " for the " + settings.name +
                             " port: " + reason);
  }
  listener result;
  result.port = (*doorman)->port();
  result.broker = mm.spawn_broker(listener_behavior, std::move(*doorman), settings,
                                  peers);
  return result;
}

}  // namespace locomov::actors
