#include "actors/connection_actor.hpp"

#include <algorithm>
#include <chrono>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/actor_probe.hpp"
#include "actors/connection_events.hpp"
#include "actors/messages.hpp"
#include "capture/recorder.hpp"
#include "common/logging.hpp"
#include "net/tls_session.hpp"
#include "protocol/confo.hpp"
#include "protocol/frame_splitter.hpp"
#include "protocol/http_query.hpp"
#include "protocol/packet_decoder.hpp"

namespace locomov::actors {
namespace {

using clock = std::chrono::steady_clock;

struct reply {
  std::uint64_t seq = 0;
  bool ready = false;
  std::string text;
};

/// What the peer turned out to speak. The packet port carries packets only;
/// on the confirmation port the first byte tells a device's confo (JSON)
/// from the app's HTTPS request.
enum class mode { undecided, packets, confos, http };

/// What ends a connection when its peer is silent for too long.
enum class deadline_kind {
  none,       ///< no silence counts: locomov owes the peer a reply
  handshake,  ///< the TLS handshake, total from accept
  read,       ///< until the first frame, and inside a frame
  idle,       ///< between frames
};

struct deadline {
  deadline_kind kind = deadline_kind::none;
  clock::time_point at;
};

struct connection_state {
  caf::actor broker;
  connection_peers peers;
  std::shared_ptr<connection_events> events;
  mode speaks = mode::undecided;
  std::unique_ptr<protocol::http_reader> http;
  connection_info info;
  connection_settings settings;
  net::ssl_ctx_ptr ctx;  // keeps the context alive as long as the session
  std::unique_ptr<net::tls_session> tls;
  std::unique_ptr<protocol::frame_splitter> splitter;
  std::deque<reply> replies;  // front is the oldest unanswered packet
  std::uint64_t next_seq = 0;
  std::string plain;
  std::string cipher_out;
  std::string frame;
  // The last read, or when the last owed reply went out: silence since then
  // is the peer's.
  clock::time_point last_activity;
  bool seen_frame = false;
  bool established = false;
  bool draining = false;  // read no more; close once owed replies are sent
  bool halted = false;
  bool closed = false;
  // One timer at a time; it is re-armed only when the deadline moves
  // earlier, so that reads, which only ever push it later, arm nothing.
  bool timer_armed = false;
  clock::time_point timer_at;
  std::uint64_t deadline_generation = 0;  // only the newest armed timer counts
  // The receipt time of the current read, in microseconds; its frames are
  // received at it, it + 1, ... (see receipt_floor).
  std::int64_t read_at = 0;
  std::int64_t frames_in_read = 0;
  actor_probe probe{name};
  static inline const char* name = "connection";
};

using connection = caf::stateful_actor<connection_state>;

/// Whether the peer stopped in the middle of something: a TLS record, a
/// JSON value or an HTTP request.
bool mid_frame(const connection_state& st) {
  if (st.tls && st.tls->mid_record()) {
    return true;
  }
  if (st.http) {
    return st.http->mid_request();
  }
  return st.splitter->buffered() > 0;
}

deadline current_deadline(const connection_state& st) {
  const auto& limits = st.settings;
  if (st.tls && !st.established) {
    return {deadline_kind::handshake, st.info.accepted_at + limits.handshake_timeout};
  }
  if (!st.replies.empty()) {
    return {};
  }
  if (!st.seen_frame || mid_frame(st)) {
    return {deadline_kind::read, st.last_activity + limits.read_timeout};
  }
  return {deadline_kind::idle, st.last_activity + limits.idle_timeout};
}

/// Makes sure a timer fires no later than the current deadline.
void schedule_deadline(connection* self) {
  auto& st = self->state;
  const auto next = current_deadline(st);
  if (st.closed || next.kind == deadline_kind::none ||
      (st.timer_armed && st.timer_at <= next.at)) {
    return;
  }
  st.timer_armed = true;
  st.timer_at = next.at;
  const auto delay = std::chrono::ceil<std::chrono::milliseconds>(next.at - clock::now());
  self->delayed_send(self, std::max(delay, std::chrono::milliseconds(0)), deadline_atom::value,
                     ++st.deadline_generation);
}

std::atomic<std::int64_t>& receipt_floor() {
  static std::atomic<std::int64_t> last{0};
  return last;
}

/// A receipt time in microseconds, strictly increasing across the process.
/// A packet without timestamp or timestr is stored at its receipt time, and
/// the database keys treat equal time and readings as a resend; two such
/// packets must not look like one. A read is received at one such time, its
/// frames at that time plus their index, and the times of later reads start
/// after them (raise_receipt_floor). A read on another connection in those
/// few microseconds can share a frame's time, which makes a resend only of a
/// packet of the same pub with the same readings. The capture keeps the
/// read's time, so a replay gives the frames the times they had.
std::int64_t unique_receipt_us() {
  using namespace std::chrono;
  const std::int64_t now =
      duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  auto& last = receipt_floor();
  std::int64_t prev = last.load(std::memory_order_relaxed);
  std::int64_t next = 0;
  do {
    next = std::max(now, prev + 1);
  } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
  return next;
}

/// Makes later receipt times come after `used`.
void raise_receipt_floor(std::int64_t used) {
  auto& last = receipt_floor();
  std::int64_t prev = last.load(std::memory_order_relaxed);
  while (prev < used && !last.compare_exchange_weak(prev, used, std::memory_order_relaxed)) {
  }
}

std::int64_t next_frame_receipt(connection_state& st) {
  return st.read_at + st.frames_in_read++;
}

void record(connection_state& st, capture::event ev, std::string_view data = {},
            capture::closer by = capture::closer::peer, std::int64_t at = 0) {
  if (!st.settings.capture) {
    return;
  }
  capture::record r;
  r.t_us = at != 0 ? at : unique_receipt_us();
  r.listener = st.info.listener;
  r.conn = st.info.id;
  r.peer = st.info.peer;
  r.ev = ev;
  r.data = std::string(data);
  r.by = by;
  st.settings.capture->write(r);
}

void send_bytes(connection* self, std::string& bytes) {
  if (bytes.empty()) {
    return;
  }
  auto& st = self->state;
  self->send(st.broker, out_atom::value, st.info.hdl, std::vector<char>(bytes.begin(), bytes.end()));
  bytes.clear();
}

void close_now(connection* self, bool notify_peer) {
  auto& st = self->state;
  if (st.closed) {
    return;
  }
  st.closed = true;
  record(st, capture::event::close, {}, capture::closer::locomov);
  if (notify_peer && st.tls && st.established) {
    st.tls->shutdown(st.cipher_out);
    send_bytes(self, st.cipher_out);
  }
  self->send(st.broker, close_atom::value, st.info.hdl);
  logs::net().debug("connection closed conn={} peer={}", st.info.id, st.info.peer);
  self->quit();
}

void write_plain(connection* self, const std::string& text) {
  auto& st = self->state;
  record(st, capture::event::out, text);
  if (st.tls) {
    st.tls->send(text, st.cipher_out);
    send_bytes(self, st.cipher_out);
  } else {
    std::string copy = text;
    send_bytes(self, copy);
  }
}

// Sends every reply that is ready and has no unanswered packet before it, then
// applies back-pressure: a connection whose packets wait on the database stops
// reading until the writers catch up.
void flush_replies(connection* self) {
  auto& st = self->state;
  std::string text;
  while (!st.replies.empty() && st.replies.front().ready) {
    text += st.replies.front().text;
    st.replies.pop_front();
  }
  if (!text.empty()) {
    write_plain(self, text);
  }
  if (!text.empty() && st.replies.empty()) {
    st.last_activity = clock::now();
  }
  if (st.draining && st.replies.empty()) {
    close_now(self, true);
    return;
  }
  if (!st.halted && st.replies.size() >= st.settings.max_pending) {
    st.halted = true;
    self->send(st.broker, halt_atom::value, st.info.hdl);
  } else if (st.halted && st.replies.size() <= st.settings.max_pending / 2 && !st.draining) {
    st.halted = false;
    self->send(st.broker, resume_atom::value, st.info.hdl);
  }
  schedule_deadline(self);
}

reply* find_reply(connection_state& st, std::uint64_t seq) {
  if (st.replies.empty() || seq < st.replies.front().seq) {
    return nullptr;
  }
  auto index = seq - st.replies.front().seq;
  return index < st.replies.size() ? &st.replies[index] : nullptr;
}

void stop_reading(connection* self, const char* reason, const std::string& detail) {
  auto& st = self->state;
  logs::protocol().warn("closing connection conn={} peer={} reason=\"{}\" detail=\"{}\"",
                        st.info.id, st.info.peer, reason, detail);
  st.draining = true;
  self->send(st.broker, halt_atom::value, st.info.hdl);
}

/// Fills the reply slot `seq` and sends what became ready.
void answer(connection* self, std::uint64_t seq, std::string text) {
  if (auto* r = find_reply(self->state, seq)) {
    r->ready = true;
    r->text = std::move(text);
    flush_replies(self);
  }
}

void on_packet(connection* self, std::int64_t received_at) {
  auto& st = self->state;
  auto result = protocol::decode_packet(st.frame, received_at);
  using kind = protocol::decode_result::kind;
  if (result.outcome == kind::undecodable) {
    st.events->frames_undecodable.inc();
    stop_reading(self, "not JSON", result.reason);
    return;
  }
  auto seq = st.next_seq++;
  if (result.outcome == kind::invalid) {
    st.events->frames_invalid.inc();
    logs::protocol().debug("packet refused conn={} peer={} reason=\"{}\"", st.info.id,
                           st.info.peer, result.reason);
    st.replies.push_back(reply{seq, true, "!OK " + result.reason + "\n"});
    return;
  }
  st.events->frames_accepted.inc();
  st.replies.push_back(reply{seq, false, {}});
  self->send(st.peers.registry, packet_msg{result.value, caf::actor_cast<caf::actor>(self), seq});
}

void on_confo(connection* self, std::int64_t received_at) {
  auto& st = self->state;
  auto result = protocol::decode_confo(st.frame, received_at, st.settings.confo_defaults);
  using kind = protocol::confo_result::kind;
  if (result.outcome == kind::undecodable) {
    st.events->frames_undecodable.inc();
    stop_reading(self, "not JSON", result.reason);
    return;
  }
  auto seq = st.next_seq++;
  if (result.outcome == kind::invalid) {
    st.events->frames_invalid.inc();
    // The device protocol has no reason field: the log keeps it.
    logs::protocol().info("confo refused conn={} peer={} reason=\"{}\"", st.info.id,
                          st.info.peer, result.reason);
    st.replies.push_back(reply{seq, true, "!OK\n"});
    return;
  }
  st.events->frames_accepted.inc();
  st.replies.push_back(reply{seq, false, {}});
  self->request(st.peers.arbiter, caf::infinite, decide_atom::value, std::move(result.value))
      .then([self, seq](bool committed) { answer(self, seq, committed ? "OK.\n" : "!OK\n"); },
            [self, seq](caf::error&) { answer(self, seq, "!OK\n"); });
}

void on_http(connection* self) {
  auto& st = self->state;
  std::vector<protocol::http_request> requests;
  st.http->feed(st.plain, requests);
  st.plain.clear();
  st.seen_frame = st.seen_frame || !requests.empty();
  for (auto& request : requests) {
    auto seq = st.next_seq++;
    if (!request.keep_alive) {
      // Answer what was asked, then close; nothing after it is read.
      st.draining = true;
    }
    if (!request.query) {
      st.replies.push_back(reply{seq, true, std::move(request.response)});
      continue;
    }
    st.replies.push_back(reply{seq, false, {}});
    const bool head = request.head;
    const bool keep_alive = request.keep_alive;
    self->request(st.peers.query, caf::infinite, query_atom::value, request.query->device_name,
                  request.query->ssid)
        .then(
            [self, seq, head, keep_alive](bool found, std::int32_t hash) {
              answer(self, seq,
                     protocol::query_response(found ? std::optional<std::int32_t>(hash)
                                                    : std::nullopt,
                                              head, keep_alive));
            },
            [self, seq, head, keep_alive](caf::error&) {
              answer(self, seq,
                     protocol::plain_response(503, "Database unavailable", head, keep_alive));
            });
  }
  if (st.http->failed()) {
    logs::protocol().warn("closing connection conn={} peer={} reason=\"{}\"", st.info.id,
                          st.info.peer, st.http->error());
    st.draining = true;
  }
  if (st.draining) {
    self->send(st.broker, halt_atom::value, st.info.hdl);
  }
  flush_replies(self);
}

void decode_frames(connection* self) {
  auto& st = self->state;
  if (st.speaks == mode::undecided) {
    if (protocol::looks_like_http(st.plain)) {
      st.speaks = mode::http;
      st.http = std::make_unique<protocol::http_reader>();
    } else {
      st.speaks = mode::confos;
    }
  }
  if (st.speaks == mode::http) {
    on_http(self);
    return;
  }
  st.splitter->feed(st.plain);
  st.plain.clear();
  while (!st.draining) {
    auto status = st.splitter->next(st.frame);
    if (status == protocol::frame_splitter::status::need_more) {
      break;
    }
    if (status == protocol::frame_splitter::status::too_large) {
      st.events->frames_too_large.inc();
      stop_reading(self, "frame too large",
                   "limit " + std::to_string(st.settings.max_frame) + " bytes");
      break;
    }
    st.seen_frame = true;
    if (st.speaks == mode::packets) {
      on_packet(self, next_frame_receipt(st));
    } else {
      on_confo(self, next_frame_receipt(st));
    }
  }
  flush_replies(self);
}

// Scanners send anything to a TLS port, so these lines are rate-limited;
// "peer did not speak TLS" apart from OpenSSL's reasons, so that one kind of
// noise cannot hide the other.
void log_tls_failure(connection* self) {
  auto& st = self->state;
  const auto& reason = st.tls->error();
  const bool not_tls = reason == "peer did not speak TLS";
  if (!st.established) {
    (not_tls ? st.events->handshakes_not_tls : st.events->handshakes_failed).inc();
    if (!not_tls) {
      st.events->handshake_failure(reason).inc();
    }
  }
  std::uint64_t suppressed = 0;
  if ((not_tls ? st.events->not_tls_log : st.events->tls_failure_log).allow(suppressed)) {
    const auto& offer = st.tls->offer();
    logs::net().warn("{} conn={} peer={} reason=\"{}\"{}{} suppressed={}",
                     st.established ? "TLS error" : "TLS handshake failed", st.info.id,
                     st.info.peer, reason, offer.empty() ? "" : " ", offer, suppressed);
  }
}

/// Handles one read. `replayed_at` is the receipt time a replay gives it
/// (the captured one); 0 for bytes from the network.
void on_bytes(connection* self, std::vector<char>& bytes, std::int64_t replayed_at) {
  auto& st = self->state;
  if (st.closed || st.draining) {
    return;
  }
  st.last_activity = clock::now();
  st.read_at = replayed_at != 0 ? replayed_at : unique_receipt_us();
  st.frames_in_read = 0;
  std::string_view data(bytes.data(), bytes.size());
  if (!st.tls) {
    st.plain.append(data);
    record(st, capture::event::in, st.plain, capture::closer::peer, st.read_at);
    decode_frames(self);
    raise_receipt_floor(st.read_at + st.frames_in_read);
    return;
  }
  auto state = st.tls->receive(data, st.plain, st.cipher_out);
  send_bytes(self, st.cipher_out);
  using tls_state = net::tls_session::state;
  if (state == tls_state::failed) {
    log_tls_failure(self);
    close_now(self, false);
    return;
  }
  if (!st.established && state != tls_state::handshaking) {
    st.established = true;
    (st.tls->resumed() ? st.events->handshakes_resumed : st.events->handshakes_full).inc();
    self->send(st.broker, tls_done_atom::value, st.info.hdl);
    logs::net().debug("TLS established conn={} peer={} version={} cipher={}", st.info.id,
                      st.info.peer, st.tls->version(), st.tls->cipher());
  }
  if (!st.plain.empty()) {
    record(st, capture::event::in, st.plain, capture::closer::peer, st.read_at);
    decode_frames(self);
    raise_receipt_floor(st.read_at + st.frames_in_read);
  }
  if (state == tls_state::closed && !st.closed) {
    // The peer is done sending; answer what it sent, then close.
    record(st, capture::event::shut);
    st.draining = true;
    flush_replies(self);
  }
  schedule_deadline(self);
}

/// The peer is done sending (a replayed TLS close_notify): answer what it
/// sent, then close.
void on_shut(connection* self) {
  auto& st = self->state;
  if (st.closed) {
    return;
  }
  st.draining = true;
  flush_replies(self);
}

/// Closes the connection for the deadline that passed.
void expire(connection* self, deadline_kind kind) {
  auto& st = self->state;
  auto& ev = *st.events;
  std::uint64_t suppressed = 0;
  switch (kind) {
    case deadline_kind::handshake:
      ev.handshake_timeouts.inc();
      if (ev.handshake_timeout_log.allow(suppressed)) {
        logs::net().warn("TLS handshake timed out conn={} peer={} limit={}ms suppressed={}",
                         st.info.id, st.info.peer, st.settings.handshake_timeout.count(),
                         suppressed);
      }
      close_now(self, false);
      return;
    case deadline_kind::read:
      ev.read_timeouts.inc();
      if (ev.read_timeout_log.allow(suppressed)) {
        logs::net().info("read timed out conn={} peer={} limit={}ms suppressed={}", st.info.id,
                         st.info.peer, st.settings.read_timeout.count(), suppressed);
      }
      break;
    case deadline_kind::idle:
      ev.idle_timeouts.inc();
      if (ev.idle_timeout_log.allow(suppressed)) {
        logs::net().info("idle timed out conn={} peer={} limit={}ms suppressed={}", st.info.id,
                         st.info.peer, st.settings.idle_timeout.count(), suppressed);
      }
      break;
    case deadline_kind::none:
      return;
  }
  close_now(self, true);
}

void on_deadline(connection* self) {
  auto& st = self->state;
  st.timer_armed = false;
  if (st.closed) {
    return;
  }
  const auto due = current_deadline(st);
  if (due.kind != deadline_kind::none && clock::now() >= due.at) {
    expire(self, due.kind);
    return;
  }
  schedule_deadline(self);
}

caf::behavior connection_behavior(connection* self, caf::actor broker, connection_info info,
                                  net::ssl_ctx_ptr tls, connection_settings settings,
                                  connection_peers peers,
                                  std::shared_ptr<connection_events> events) {
  auto& st = self->state;
  st.broker = std::move(broker);
  st.peers = std::move(peers);
  st.events = std::move(events);
  st.info = std::move(info);
  st.last_activity = st.info.accepted_at;
  if (st.info.kind == service::packet) {
    st.speaks = mode::packets;
  }
  st.settings = settings;
  st.ctx = std::move(tls);
  st.splitter = std::make_unique<protocol::frame_splitter>(settings.max_frame);
  if (st.ctx) {
    st.tls = std::make_unique<net::tls_session>(st.ctx.get());
  } else {
    st.established = true;
  }
  record(st, capture::event::open);
  schedule_deadline(self);
  return {
      [self](recv_atom, std::vector<char>& bytes) {
        const auto measured = self->state.probe.handle(self);
        on_bytes(self, bytes, 0);
      },
      [self](recv_atom, std::vector<char>& bytes, std::int64_t replayed_at) {
        const auto measured = self->state.probe.handle(self);
        on_bytes(self, bytes, replayed_at);
      },
      [self](shut_atom) {
        const auto measured = self->state.probe.handle(self);
        on_shut(self);
      },
      [self](stored_atom, std::uint64_t seq) {
        const auto measured = self->state.probe.handle(self);
        answer(self, seq, "Thank you.\n");
      },
      [self](failed_atom, std::uint64_t seq) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        if (find_reply(st, seq) == nullptr) {
          return;
        }
        // Replies are ordered, so nothing after this packet may be answered
        // either; the device will resend what was not acknowledged.
        logs::net().warn("packet could not be stored, closing conn={} peer={}", st.info.id,
                         st.info.peer);
        while (!st.replies.empty() && st.replies.front().seq != seq) {
          if (!st.replies.front().ready) {
            break;
          }
          write_plain(self, st.replies.front().text);
          st.replies.pop_front();
        }
        close_now(self, true);
      },
      [self](deadline_atom, std::uint64_t generation) {
        const auto measured = self->state.probe.handle(self);
        if (generation == self->state.deadline_generation) {
          on_deadline(self);
        }
      },
      [self](peer_gone_atom) {
        const auto measured = self->state.probe.handle(self);
        if (!self->state.closed) {
          record(self->state, capture::event::close);
        }
        self->state.closed = true;
        self->quit();
      },
      [self](drain_atom) {
        const auto measured = self->state.probe.handle(self);
        // Reads already queued were received before the drain: they are
        // handled, then (drained) ends reading.
        auto& st = self->state;
        if (!st.halted) {
          st.halted = true;
          self->send(st.broker, halt_atom::value, st.info.hdl);
        }
        self->send(self, drained_atom::value);
      },
      [self](drained_atom) {
        const auto measured = self->state.probe.handle(self);
        auto& st = self->state;
        if (st.closed) {
          return;
        }
        if (!st.established) {
          close_now(self, false);
          return;
        }
        st.draining = true;
        flush_replies(self);
      },
  };
}

}  // namespace

caf::actor spawn_connection_actor(caf::actor_system& sys, caf::actor broker, connection_info info,
                                  net::ssl_ctx_ptr tls, const connection_settings& settings,
                                  const connection_peers& peers,
                                  std::shared_ptr<connection_events> events) {
  return sys.spawn(connection_behavior, std::move(broker), std::move(info), std::move(tls),
                   settings, peers, std::move(events));
}

}  // namespace locomov::actors
