#pragma once

#include <chrono>
#include <string>

namespace locomov::app {

// Notifications to systemd (sd_notify) for a Type=notify unit. Each does
// nothing when locomov is not started by systemd (no NOTIFY_SOCKET), so a
// plain foreground run needs no systemd at all. Called from main's thread.

/// Start-up finished: listeners accept and the database is migrated.
void notify_ready(const std::string& status);

/// A configuration reload began (SIGHUP); notify_ready ends it.
void notify_reloading();

/// Shutdown began (systemd then waits up to TimeoutStopSec).
void notify_stopping();

/// The interval within which systemd expects a watchdog ping (WatchdogSec=),
/// or zero when no watchdog is configured.
std::chrono::microseconds watchdog_interval();

/// One watchdog ping.
void notify_watchdog();

}  // namespace locomov::app
