#pragma once

#include <memory>

#include "apps/locomovctl/command.hpp"

namespace locomov::ctl {

/// `locomovctl replay FILE...`: starts locomov's actors in this process,
/// feeds them the captured traffic and prints how their replies compare
/// with the recorded ones and what reached the database. Exits 0 when every
/// reply matches, 1 otherwise.
std::unique_ptr<command> make_replay_command();

}  // namespace locomov::ctl
