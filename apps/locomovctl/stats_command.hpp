#pragma once

#include <memory>

#include "apps/locomovctl/command.hpp"

namespace locomov::ctl {

/// `locomovctl stats`: polls the daemon's /stats and shows a live view of
/// its actors, connections, packets, writers, spool and process, or with
/// `--json` prints one /stats document as the daemon wrote it.
std::unique_ptr<command> make_stats_command();

}  // namespace locomov::ctl
