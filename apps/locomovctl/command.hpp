#pragma once

namespace CLI {
class App;
}

namespace locomov::ctl {

/// Exit status for a command that ran and failed: the server unreachable,
/// or its answers not the ones asked for.
inline constexpr int exit_failed = 1;

/// Exit status for a command line that cannot be run as given.
inline constexpr int exit_usage = 2;

/// One subcommand of locomovctl. `add_to` declares the subcommand and its
/// options on the parser, binding them to members; `run` is called after a
/// successful parse when this subcommand was chosen and returns the exit
/// status.
class command {
 public:
  virtual ~command() = default;
  virtual CLI::App* add_to(CLI::App& parent) = 0;
  virtual int run() = 0;
};

}  // namespace locomov::ctl
