#include "tests/e2e/daemon_fixture.hpp"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/pg_cluster.hpp"

namespace locomov::test {

std::string locomov_binary() { return LOCOMOV_BINARY; }
std::string locomovctl_binary() { return LOCOMOVCTL_BINARY; }

daemon::daemon(const std::vector<std::string>& extra, std::uint64_t open_files) {
  char dir[] = "/tmp/locomov-e2e-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  state_dir_ = dir;
  // The embedded cluster runs as `postgres` under root; it must reach its folder.
  std::filesystem::permissions(state_dir_, std::filesystem::perms(0755));
  // A test may name the packet port (one a test CA connects to, say).
  const auto named_port = std::find(extra.begin(), extra.end(), "--packet-port");
  packet_port_ = named_port != extra.end() && named_port + 1 != extra.end()
                     ? std::stoi(*(named_port + 1))
                     : free_port();
  plain_port_ = free_port();
  embedded_db_port_ = free_port();
  confo_port_ = free_port();
  status_port_ = free_port();
  std::vector<std::string> argv{locomov_binary(),
                                "--state-dir", state_dir_.string(),
                                "--packet-listen", "127.0.0.1",
                                "--plain-port", std::to_string(plain_port_),
                                "--embedded-db-port", std::to_string(embedded_db_port_),
                                "--confo-listen", "127.0.0.1",
                                "--confo-port", std::to_string(confo_port_),
                                "--status-port", std::to_string(status_port_)};
  if (named_port == extra.end()) {
    argv.insert(argv.end(), {"--packet-port", std::to_string(packet_port_)});
  }
  // Tests read the debug lines, unless one asks for less under heavy load.
  if (std::find(extra.begin(), extra.end(), "--log-level") == extra.end()) {
    argv.insert(argv.end(), {"--log-level", "debug"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (auto f = std::find(extra.begin(), extra.end(), "--log-file");
      f != extra.end() && f + 1 != extra.end()) {
    log_file_ = *(f + 1);
  }
  argv_ = std::move(argv);
  open_files_ = open_files;
  start_and_wait();
}

void daemon::start_and_wait() {
  const auto log_name = starts_ == 0 ? std::string("locomov.log")
                                     : "locomov." + std::to_string(starts_) + ".log";
  ++starts_;
  proc_ = std::make_unique<process>(argv_, state_dir_ / log_name, open_files_);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until) {
    if (log().find("locomov ready") != std::string::npos) {
      return;
    }
    if (!proc_->running()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // A log file that cannot be opened is reported on stderr.
  const auto stderr_text =
      log_file_.empty() ? std::string() : "\n--- stderr ---\n" + proc_->output();
  throw std::runtime_error("locomov did not become ready:\n" + log() + stderr_text);
}

daemon::~daemon() {
  stop();
  // LOCOMOV_E2E_KEEP=1 leaves the state directory (log, cluster) for a post-mortem.
  if (getenv("LOCOMOV_E2E_KEEP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(state_dir_, ec);
  }
}

std::string daemon::log() const {
  if (log_file_.empty()) {
    return proc_->output();
  }
  std::ifstream in(log_file_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int daemon::log_lines_with(const std::vector<std::string>& parts) const {
  const auto text = log();
  int n = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) {
      end = text.size();
    }
    const std::string_view line(text.data() + start, end - start);
    bool all = true;
    for (const auto& part : parts) {
      all = all && line.find(part) != std::string_view::npos;
    }
    n += all ? 1 : 0;
    start = end + 1;
  }
  return n;
}

int daemon::stop() {
  proc_->signal(SIGTERM);
  return proc_->wait(std::chrono::seconds(30));
}

void daemon::kill() {
  proc_->signal(SIGKILL);
  if (proc_->wait(std::chrono::seconds(30)) == -1) {
    throw std::runtime_error("locomov outlived SIGKILL");
  }
}

void daemon::restart() {
  if (proc_->running()) {
    throw std::runtime_error("restart() while locomov still runs");
  }
  start_and_wait();
}

}  // namespace locomov::test
