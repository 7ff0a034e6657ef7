#include "apps/locomov/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>

#include "common/logging.hpp"

namespace locomov::app {
namespace {

void notify(const std::string& state) {
  // 0: keep NOTIFY_SOCKET in the environment, for the pings that follow.
  const int r = sd_notify(0, state.c_str());
  if (r < 0) {
    logs::app().warn("systemd notification failed state=\"{}\" errno={}", state, -r);
  }
}

}  // namespace

void notify_ready(const std::string& status) { notify("READY=1\nSTATUS=" + status); }

// Without MONOTONIC_USEC, which only Type=notify-reload (systemd 253 and
// later) asks for; the unit is Type=notify, for Debian 12's systemd 252.
void notify_reloading() { notify("RELOADING=1\nSTATUS=reloading configuration"); }

void notify_stopping() { notify("STOPPING=1\nSTATUS=shutting down"); }

std::chrono::microseconds watchdog_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0) {
    return std::chrono::microseconds::zero();
  }
  return std::chrono::microseconds(usec);
}

void notify_watchdog() { notify("WATCHDOG=1"); }

}  // namespace locomov::app
