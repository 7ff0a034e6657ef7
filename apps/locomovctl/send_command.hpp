#pragma once

#include <memory>

#include "apps/locomovctl/command.hpp"

namespace locomov::ctl {

/// `locomovctl send`: sends packets to the packet port, prints each reply
/// and a summary; exit status 0 only when every packet got `Thank you.`.
std::unique_ptr<command> make_send_command();

}  // namespace locomov::ctl
