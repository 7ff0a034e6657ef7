// locomovctl: command-line client for a running locomov daemon.

#include <csignal>
#include <iostream>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/locomovctl/command.hpp"
#include "apps/locomovctl/confo_command.hpp"
#include "apps/locomovctl/send_command.hpp"
#include "apps/locomovctl/capture_command.hpp"
#include "apps/locomovctl/cert_command.hpp"
#include "apps/locomovctl/replay_command.hpp"
#include "apps/locomovctl/stats_command.hpp"

int main(int argc, char** argv) {
  using namespace locomov::ctl;

  // OpenSSL writes through plain write(); a server that hangs up early must
  // surface as EPIPE on that connection, not kill the whole client.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"locomovctl: talk to a locomov server"};
  app.require_subcommand(1);

  std::vector<std::unique_ptr<command>> commands;
  commands.push_back(make_send_command());
  commands.push_back(make_confo_command());
  commands.push_back(make_query_command());
  commands.push_back(make_stats_command());
  commands.push_back(make_replay_command());
  commands.push_back(make_capture_command());
  commands.push_back(make_cert_command());

  std::vector<std::pair<CLI::App*, command*>> chosen;
  for (const auto& c : commands) {
    chosen.emplace_back(c->add_to(app), c.get());
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : exit_usage;
  }

  for (const auto& [sub, cmd] : chosen) {
    if (sub->parsed()) {
      return cmd->run();
    }
  }
  return exit_usage;
}
