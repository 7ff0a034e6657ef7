#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace locomov::test {

/// A child process started from an argv vector, its stdout and stderr going
/// to one log file. The destructor kills it (SIGKILL) if still running.
class process {
 public:
  /// `open_files`, when not 0, becomes the child's soft and hard
  /// RLIMIT_NOFILE, set between fork and exec.
  process(const std::vector<std::string>& argv, const std::filesystem::path& log,
          std::uint64_t open_files = 0);
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Sends a signal; no-op once reaped.
  void signal(int sig);

  /// Waits up to `limit` for the process to end. Returns its exit status,
  /// 128 + signal when a signal ended it, or -1 when it is still running.
  int wait(std::chrono::milliseconds limit);

  bool running();
  pid_t pid() const { return pid_; }

  /// Everything the process has written so far.
  std::string output() const;

  /// Descriptors the process holds now (entries of /proc/PID/fd).
  std::size_t open_descriptors() const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::filesystem::path log_;
};

/// The value of `field` ("Uid", "Gid", "State", ...) in /proc/PID/status,
/// such as "65534\t65534\t65534\t65534"; empty when there is no such
/// process or field.
std::string proc_status(pid_t pid, const std::string& field);

/// Output and exit status of a finished command.
struct command_result {
  int status = -1;
  std::string output;  ///< stdout and stderr together
};

/// Runs a command to completion, feeding `input` on its stdin; kills it
/// after `limit`, or as soon as its output holds `stop_at` when that is not
/// empty (for clients such as `openssl s_client -ign_eof` that wait for the
/// server to close).
command_result run_command(const std::vector<std::string>& argv, const std::string& input = {},
                           std::chrono::milliseconds limit = std::chrono::seconds(30),
                           const std::string& stop_at = {});

}  // namespace locomov::test
