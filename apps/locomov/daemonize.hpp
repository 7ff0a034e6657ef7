#pragma once

#include <filesystem>
#include <string>

namespace locomov::app {

/// A pidfile held for the process's life. It is opened and locked (flock)
/// when made, and the lock is what says "running": it dies with its process,
/// so a file left by a crash never blocks a start, even once its pid has
/// been reused, while a second locomov given the same file refuses to start.
/// Made by the main thread before daemonize(); the child inherits the lock.
class pidfile {
 public:
  /// Creates or opens `path` and locks it. Throws std::runtime_error naming
  /// the path and the pid of the process holding it, or why it cannot be
  /// opened.
  explicit pidfile(std::filesystem::path path);

  /// Removes the file. When its folder does not let this process remove it
  /// (the process gave up root after making it), empties it instead.
  ~pidfile();

  pidfile(const pidfile&) = delete;
  pidfile& operator=(const pidfile&) = delete;

  /// Writes the calling process's pid: call it in the process that serves,
  /// after daemonize().
  void write_own_pid();

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

/// The way back from a daemon to the process that started it, so that the
/// command `locomov --daemon` exits 0 only once locomov serves, and with the
/// reason when it does not. Empty (reports go nowhere) in the foreground.
class start_report {
 public:
  start_report() = default;
  explicit start_report(int fd) : fd_(fd) {}
  ~start_report();
  start_report(start_report&& other) noexcept;
  start_report& operator=(start_report&& other) noexcept;
  start_report(const start_report&) = delete;
  start_report& operator=(const start_report&) = delete;

  /// The listeners are up: the waiting parent exits 0. Later reports are
  /// ignored.
  void ready();

  /// Start-up failed: the waiting parent prints `reason` and exits 1.
  void failed(const std::string& reason);

 private:
  void send(const std::string& message);

  int fd_ = -1;
};

/// Turns the process into a daemon: forks, and the parent waits for the
/// child's report and exits with it (it never returns). The child starts a
/// session of its own, moves to / (paths in the options are absolute by
/// then), points stdin, stdout and stderr at /dev/null, and returns the
/// channel to report on. Call from the main thread before any other thread
/// exists (before the actor system): fork copies only the calling thread.
/// Throws std::runtime_error when fork or the pipe fails.
start_report daemonize();

}  // namespace locomov::app
