#pragma once

#include <cstdint>
#include <string>

namespace locomov::net {

/// The process's limit on open descriptors (RLIMIT_NOFILE).
struct open_files_limit {
  std::uint64_t soft = 0;  ///< in force now
  std::uint64_t hard = 0;  ///< the most an unprivileged process may raise it to
  std::uint64_t was = 0;   ///< soft limit before raise_open_files_limit
  std::string error;       ///< why raising failed; empty if it did not
};

/// Raises the soft descriptor limit to the hard one, as nginx's
/// worker_rlimit_nofile does: every connection holds a descriptor, and the
/// usual soft default of 1024 is a few minutes of scanner traffic. Call at
/// start-up; the limit is process-wide.
open_files_limit raise_open_files_limit();

}  // namespace locomov::net
