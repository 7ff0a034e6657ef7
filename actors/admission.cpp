#include "actors/admission.hpp"

#include <algorithm>
#include <utility>

#include "common/metrics.hpp"

namespace locomov::actors {

admission::ticket::ticket(ticket&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), address_(std::move(other.address_)) {}

admission::ticket& admission::ticket::operator=(ticket&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    address_ = std::move(other.address_);
  }
  return *this;
}

void admission::ticket::release() {
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->give_back(address_);
  }
}

admission::admission(std::size_t max_total, std::size_t max_per_address)
    : max_total_(std::max<std::size_t>(max_total, 1)),
      max_per_address_(max_per_address),
      open_gauge_(metrics::get_gauge("locomov_connections_open", {},
                                     "Connections the listeners hold, all listeners together")) {}

admission::verdict admission::admit(const std::string& address, ticket& place) {
  place.release();
  std::lock_guard lock(m_);
  auto& from_address = per_address_[address];
  if (max_per_address_ != 0 && from_address >= max_per_address_) {
    return verdict::address_limit;
  }
  if (open_ >= max_total_) {
    if (from_address == 0) {
      per_address_.erase(address);
    }
    return verdict::overall_limit;
  }
  ++from_address;
  ++open_;
  open_gauge_.set(static_cast<std::int64_t>(open_));
  place.owner_ = this;
  place.address_ = address;
  return verdict::admitted;
}

void admission::set_limits(std::size_t max_total, std::size_t max_per_address) {
  std::lock_guard lock(m_);
  max_total_ = std::max<std::size_t>(max_total, 1);
  max_per_address_ = max_per_address;
}

std::size_t admission::open() const {
  std::lock_guard lock(m_);
  return open_;
}

std::size_t admission::max_total() const {
  std::lock_guard lock(m_);
  return max_total_;
}

std::size_t admission::max_per_address() const {
  std::lock_guard lock(m_);
  return max_per_address_;
}

void admission::give_back(const std::string& address) {
  std::lock_guard lock(m_);
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second == 0) {
    per_address_.erase(it);
  }
  --open_;
  open_gauge_.set(static_cast<std::int64_t>(open_));
}

std::size_t default_max_connections(std::uint64_t open_files) {
  const std::uint64_t reserve = std::min<std::uint64_t>(64, open_files / 2);
  return static_cast<std::size_t>(std::clamp<std::uint64_t>(open_files - reserve, 1, 16384));
}

}  // namespace locomov::actors
