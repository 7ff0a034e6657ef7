#include "actors/replay.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>

#include <caf/all.hpp>
#include <caf/io/connection_handle.hpp>
#include <nlohmann/json.hpp>

#include "actors/connection_events.hpp"
#include "actors/messages.hpp"
#include "common/logging.hpp"
#include "protocol/frame_splitter.hpp"
#include "capture/replies.hpp"
#include "protocol/http_query.hpp"
#include "protocol/packet_decoder.hpp"

namespace locomov::actors {
namespace {

using steady = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

/// Go's encoding/json matches keys case-insensitively; ASCII folding covers
/// the keys rewritten here.
bool same_key(const std::string& key, std::string_view name) {
  return key.size() == name.size() &&
         std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

bool rewrites(const replay_settings& s) {
  return !s.id_map.empty() || s.id_offset != 0 || s.time_shift_us != 0;
}

struct held_read {
  std::vector<char> bytes;
  std::int64_t at_us = 0;
};

/// One recorded connection as the replay drives it.
struct replay_conn {
  std::uint64_t conn = 0;
  std::string listener;
  bool confo_port = false;
  bool http = false;
  bool seen_data = false;
  caf::actor actor;
  caf::io::connection_handle hdl;
  std::string recorded;  // the replies the capture holds so far
  std::string replayed;  // the replies the actor gave
  bool halted = false;
  bool ended = false;
  bool ends_itself = false;  // recorded shut or close by locomov: the actor closes it
  std::size_t awaited = 0;  // replies to wait for before the next read (confirmation port)
  std::deque<held_read> held;
  std::unique_ptr<protocol::frame_splitter> splitter;  // only when frames are rewritten

  bool caught_up() const {
    return ended || capture::count_replies(replayed, http) >= capture::count_replies(recorded, http);
  }
};

class driver {
 public:
  driver(caf::actor_system& sys, const connection_peers& peers, const replay_settings& settings)
      : sys_(sys), self_(sys), peers_(peers), settings_(settings) {
    settings_.connection.capture = nullptr;
  }

  replay_report run(const std::vector<capture::record>& records) {
    const auto started = steady::now();
    const std::int64_t first_t = records.empty() ? 0 : records.front().t_us;
    const auto caused = capture::replies_caused(records);
    for (std::size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      expected_ = caused[i];
      if (settings_.speed > 0) {
        const auto offset = std::chrono::microseconds(static_cast<std::int64_t>(
            static_cast<double>(r.t_us - first_t) / settings_.speed));
        pump_until(started + offset);
      }
      pump_ready();
      handle(r);
    }
    // Every recorded reply, and the end of every connection locomov closed
    // (its replies may come after the last record), then the end of what
    // the capture held.
    wait_for([this] {
      return std::all_of(conns_.begin(), conns_.end(), [](const auto& c) {
        return c->caught_up() && (c->ended || !c->ends_itself);
      });
    });
    for (auto& c : conns_) {
      if (!c->ended) {
        self_->send(c->actor, peer_gone_atom::value);
      }
    }
    wait_for([this] {
      return std::all_of(conns_.begin(), conns_.end(), [](const auto& c) { return c->ended; });
    });
    report_.seconds = std::chrono::duration<double>(steady::now() - started).count();
    compare();
    return report_;
  }

 private:
  replay_conn* find(const capture::record& r) {
    auto i = open_.find(r.conn);
    return i == open_.end() ? nullptr : i->second;
  }

  std::shared_ptr<connection_events> events_for(const std::string& listener) {
    auto& e = events_[listener];
    if (!e) {
      e = std::make_shared<connection_events>("replay-" + listener);
    }
    return e;
  }

  void open(const capture::record& r) {
    auto c = std::make_unique<replay_conn>();
    c->conn = r.conn;
    c->listener = r.listener;
    c->confo_port = r.listener == "confo";
    c->hdl = caf::io::connection_handle::from_int(static_cast<std::int64_t>(conns_.size()) + 1);
    if (rewrites(settings_)) {
      c->splitter = std::make_unique<protocol::frame_splitter>(settings_.connection.max_frame);
    }
    connection_info info;
    info.hdl = c->hdl;
    info.id = r.conn;
    info.peer = r.peer;
    info.listener = r.listener;
    info.kind = c->confo_port ? service::confo : service::packet;
    info.accepted_at = steady::now();
    c->actor = spawn_connection_actor(sys_, caf::actor_cast<caf::actor>(self_), std::move(info),
                                      nullptr, settings_.connection, peers_,
                                      events_for(r.listener));
    self_->monitor(c->actor);
    by_hdl_[c->hdl] = c.get();
    by_actor_[c->actor.address()] = c.get();
    // A connection number seen again (a capture spanning restarts) is a
    // new connection from here on.
    open_[r.conn] = c.get();
    conns_.push_back(std::move(c));
    ++report_.connections;
  }

  /// The bytes a read delivers: as recorded, or with its complete frames
  /// rewritten (an incomplete one waits for the next read).
  std::string delivered(replay_conn& c, const std::string& data) {
    if (!c.splitter || c.http) {
      return data;
    }
    c.splitter->feed(data);
    std::string out;
    std::string frame;
    while (c.splitter->next(frame) == protocol::frame_splitter::status::frame) {
      out += rewrite_frame(frame, settings_);
      out += '\n';
    }
    return out;
  }

  void read(replay_conn& c, const capture::record& r) {
    if (!c.seen_data) {
      c.seen_data = true;
      c.http = capture::speaks_http(r.listener, r.data);
    }
    ++report_.reads;
    report_.bytes += r.data.size();
    auto bytes = delivered(c, r.data);
    if (bytes.empty() || c.ended) {
      return;
    }
    held_read h{std::vector<char>(bytes.begin(), bytes.end()), r.t_us + settings_.time_shift_us};
    if (c.halted) {
      c.held.push_back(std::move(h));
      return;
    }
    self_->send(c.actor, recv_atom::value, std::move(h.bytes), h.at_us);
    // Requests to the confirmation port are decided one after another by
    // the confo-arbiter, each seeing what the one before it stored: the
    // replay waits for this read's answers before the next record, so that
    // decisions come in the recorded order.
    if (c.confo_port && expected_ > 0) {
      c.awaited += expected_;
      wait_for([&c] { return c.ended || capture::count_replies(c.replayed, c.http) >= c.awaited; });
    }
  }

  void handle(const capture::record& r) {
    if (r.ev == capture::event::open) {
      open(r);
      return;
    }
    auto* c = find(r);
    if (c == nullptr) {
      // A capture's first file may start inside a connection: that part
      // of it cannot be replayed.
      return;
    }
    switch (r.ev) {
      case capture::event::in:
        read(*c, r);
        break;
      case capture::event::out:
        c->recorded += r.data;
        break;
      case capture::event::shut:
        c->ends_itself = true;
        wait_for([c] { return c->caught_up(); });
        if (!c->ended) {
          self_->send(c->actor, shut_atom::value);
        }
        break;
      case capture::event::close:
        // Closed by locomov: the replayed actor closes by itself, or not,
        // which the replies show. Closed by the peer: as it went.
        if (r.by == capture::closer::peer) {
          wait_for([c] { return c->caught_up(); });
          if (!c->ended) {
            self_->send(c->actor, peer_gone_atom::value);
          }
        } else {
          c->ends_itself = true;
        }
        open_.erase(r.conn);
        break;
      case capture::event::open:
        break;
    }
  }

  replay_conn* by_hdl(const caf::io::connection_handle& hdl) {
    auto i = by_hdl_.find(hdl);
    return i == by_hdl_.end() ? nullptr : i->second;
  }

  /// Handles one message from a connection actor, waiting at most `wait`.
  /// False when none came.
  bool pump_one(std::chrono::microseconds wait) {
    bool got = true;
    self_->receive(
        [this](out_atom, const caf::io::connection_handle& hdl, const std::vector<char>& bytes) {
          if (auto* c = by_hdl(hdl)) {
            c->replayed.append(bytes.data(), bytes.size());
          }
        },
        [this](close_atom, const caf::io::connection_handle& hdl) {
          if (auto* c = by_hdl(hdl)) {
            c->ended = true;
          }
        },
        [this](halt_atom, const caf::io::connection_handle& hdl) {
          if (auto* c = by_hdl(hdl)) {
            c->halted = true;
          }
        },
        [this](resume_atom, const caf::io::connection_handle& hdl) {
          if (auto* c = by_hdl(hdl)) {
            c->halted = false;
            while (!c->held.empty() && !c->halted) {
              auto h = std::move(c->held.front());
              c->held.pop_front();
              self_->send(c->actor, recv_atom::value, std::move(h.bytes), h.at_us);
            }
          }
        },
        [](tls_done_atom, const caf::io::connection_handle&) {},
        [this](const caf::down_msg& down) {
          auto i = by_actor_.find(down.source);
          if (i != by_actor_.end()) {
            i->second->ended = true;
          }
        },
        caf::after(wait) >> [&got] { got = false; });
    return got;
  }

  void pump_ready() {
    while (pump_one(std::chrono::microseconds(0))) {
    }
  }

  void pump_until(steady::time_point when) {
    for (auto now = steady::now(); now < when; now = steady::now()) {
      pump_one(std::chrono::duration_cast<std::chrono::microseconds>(when - now));
    }
  }

  template <class Done>
  void wait_for(Done done) {
    const auto limit = steady::now() + settings_.reply_timeout;
    while (!done()) {
      const auto now = steady::now();
      if (now >= limit) {
        logs::app().warn("replay: replies did not come within {} ms, going on",
                         settings_.reply_timeout.count());
        return;
      }
      pump_one(std::chrono::duration_cast<std::chrono::microseconds>(limit - now));
    }
  }

  void compare() {
    for (const auto& c : conns_) {
      const auto recorded = capture::split_replies(c->recorded, c->http);
      const auto replayed = capture::split_replies(c->replayed, c->http);
      report_.replies_recorded += recorded.size();
      for (const auto& reply : replayed) {
        report_.packets_acknowledged += reply == "Thank you.\n" ? 1 : 0;
      }
      const auto n = std::max(recorded.size(), replayed.size());
      for (std::size_t i = 0; i < n; ++i) {
        const std::string* want = i < recorded.size() ? &recorded[i] : nullptr;
        const std::string* got = i < replayed.size() ? &replayed[i] : nullptr;
        if (want != nullptr && got != nullptr && *want == *got) {
          ++report_.replies_matching;
          continue;
        }
        if (want == nullptr) {
          ++report_.replies_extra;
        } else if (got == nullptr) {
          ++report_.replies_missing;
        } else {
          ++report_.replies_differing;
        }
        if (report_.differences.size() < settings_.differences_kept) {
          report_.differences.push_back(reply_difference{
              c->conn, c->listener, i, want != nullptr ? *want : "", got != nullptr ? *got : ""});
        }
      }
    }
  }

  caf::actor_system& sys_;
  caf::scoped_actor self_;
  connection_peers peers_;
  replay_settings settings_;
  std::vector<std::unique_ptr<replay_conn>> conns_;
  std::unordered_map<std::uint64_t, replay_conn*> open_;
  std::map<caf::io::connection_handle, replay_conn*> by_hdl_;
  std::map<caf::actor_addr, replay_conn*> by_actor_;
  std::map<std::string, std::shared_ptr<connection_events>> events_;
  replay_report report_;
  std::size_t expected_ = 0;  // replies the current record caused
};

}  // namespace

std::string rewrite_frame(const std::string& frame, const replay_settings& settings) {
  json doc;
  try {
    doc = json::parse(frame);
  } catch (const json::exception&) {
    // parse_error, and out_of_range for a number past a double's range.
    return frame;
  }
  if (!doc.is_object()) {
    return frame;
  }
  bool changed = false;
  for (auto& [key, value] : doc.items()) {
    if (same_key(key, "id") && value.is_number_integer()) {
      auto id = value.get<std::int64_t>();
      if (auto m = settings.id_map.find(id); m != settings.id_map.end()) {
        id = m->second;
      }
      value = id + settings.id_offset;
      changed = true;
    } else if (same_key(key, "timestamp") && value.is_number() && settings.time_shift_us != 0) {
      const auto shift_s = static_cast<std::int64_t>(
          std::llround(static_cast<double>(settings.time_shift_us) / 1e6));
      if (value.is_number_integer()) {
        value = value.get<std::int64_t>() + shift_s;
      } else {
        value = value.get<double>() + static_cast<double>(shift_s);
      }
      changed = true;
    } else if (same_key(key, "timestr") && value.is_string() && settings.time_shift_us != 0) {
      std::int64_t us = 0;
      if (protocol::parse_rfc3339(value.get<std::string>(), us)) {
        value = capture::format_time(us + settings.time_shift_us);
        changed = true;
      }
    }
  }
  return changed ? doc.dump() : frame;
}

replay_report replay(caf::actor_system& sys, const connection_peers& peers,
                     const std::vector<capture::record>& records,
                     const replay_settings& settings) {
  driver d(sys, peers, settings);
  return d.run(records);
}

}  // namespace locomov::actors
