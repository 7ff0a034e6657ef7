#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace locomov::metrics {
class gauge;
}

namespace locomov::actors {

/// The number of connections every listener together may hold, overall and
/// per peer address (meters behind one NAT share an address, so that limit
/// is meant to be generous). Shared by the listener brokers; thread-safe.
/// Keeps the locomov_connections_open gauge.
class admission {
 public:
  enum class verdict {
    admitted,
    overall_limit,  ///< every place is taken
    address_limit,  ///< the peer's address holds its share already
  };

  /// One admitted connection's place, given back when destroyed. The
  /// admission must outlive its tickets.
  class ticket {
   public:
    ticket() = default;
    ticket(ticket&& other) noexcept;
    ticket& operator=(ticket&& other) noexcept;
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;
    ~ticket() { release(); }

    explicit operator bool() const { return owner_ != nullptr; }
    void release();

   private:
    friend class admission;
    admission* owner_ = nullptr;
    std::string address_;
  };

  /// At most `max_total` connections (at least one), at most
  /// `max_per_address` from one address (0: no such limit).
  admission(std::size_t max_total, std::size_t max_per_address);

  /// A place for a connection from `address` in `place`, or why there is
  /// none. The address limit is looked at first: making room by closing
  /// another connection would not help a peer over its own share.
  verdict admit(const std::string& address, ticket& place);

  /// Changes both limits for the connections admitted from now on (SIGHUP).
  /// Connections already admitted keep their places, even beyond the new
  /// limits: they are not closed.
  void set_limits(std::size_t max_total, std::size_t max_per_address);

  std::size_t open() const;
  std::size_t max_total() const;
  std::size_t max_per_address() const;

 private:
  void give_back(const std::string& address);

  std::size_t max_total_;
  std::size_t max_per_address_;
  metrics::gauge& open_gauge_;
  mutable std::mutex m_;
  std::size_t open_ = 0;
  std::unordered_map<std::string, std::size_t> per_address_;
};

/// The default overall limit for a soft descriptor limit of `open_files`:
/// all of it but a reserve of 64 (at most half) for the database
/// connections, the log and the runtime's own descriptors, and never more
/// than 16384 connections, whose TLS sessions and buffers cost memory too.
std::size_t default_max_connections(std::uint64_t open_files);

}  // namespace locomov::actors
