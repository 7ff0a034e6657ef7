#pragma once

#include <memory>

#include "apps/locomovctl/command.hpp"

namespace locomov::ctl {

/// `locomovctl capture import-pcap|import-packets`: turns traffic users
/// already have (a pcap of the plaintext listener, a file of JSON packets)
/// into a capture file that `locomovctl replay` takes.
std::unique_ptr<command> make_capture_command();

}  // namespace locomov::ctl
