#include "apps/locomov/daemonize.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace locomov::app {
namespace {

constexpr const char* ready_message = "ready\n";
constexpr const char* failed_prefix = "failed ";

std::string errno_text() { return std::strerror(errno); }

/// What the file says, for the message naming who holds it.
std::string pid_in(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.pop_back();
  }
  return text.empty() ? "unknown" : text;
}

/// True when `fd` is still the file `path` names: a locomov stopping removes
/// its pidfile before it lets go of the lock, so a lock taken on the file
/// it removed would guard nothing.
bool still_named(int fd, const std::filesystem::path& path) {
  struct stat by_fd {};
  struct stat by_path {};
  return ::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 &&
         by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

void write_stderr(const std::string& text) {
  // The parent ends with _exit: no stdio buffer would be flushed.
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (n <= 0 && errno != EINTR) {
      return;
    }
    done += n > 0 ? static_cast<std::size_t>(n) : 0;
  }
}

std::string describe_end(int status) {
  if (WIFEXITED(status)) {
    return "exit status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("signal ") + strsignal(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

/// The parent's side: waits for the child's report and exits with it. It
/// ends with _exit, so that nothing it shares with the child (the log file,
/// the pidfile, atexit handlers) is flushed, removed or run twice.
[[noreturn]] void wait_for_child(int fd, pid_t child) {
  std::string message;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      message.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  if (message == ready_message) {
    ::_exit(0);
  }
  if (message.rfind(failed_prefix, 0) == 0) {
    write_stderr("locomov: cannot start: " + message.substr(std::strlen(failed_prefix)) + "\n");
    ::_exit(1);
  }
  // No report: the child died before it could send one (a crash, SIGKILL).
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  write_stderr("locomov: the daemon ended before it was ready (" + describe_end(status) +
               "); its log file may say why\n");
  ::_exit(1);
}

}  // namespace

pidfile::pidfile(std::filesystem::path path) : path_(std::move(path)) {
  // Twice at most: the second round only when a stopping locomov removed
  // the file between our open and our lock.
  for (int attempt = 0; attempt < 2; ++attempt) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw std::runtime_error("cannot open pidfile " + path_.string() + ": " + errno_text());
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const auto holder = pid_in(fd_);
      ::close(fd_);
      fd_ = -1;
      if (err == EWOULDBLOCK) {
        throw std::runtime_error("pidfile " + path_.string() +
                                 " is held by a running locomov pid=" + holder +
                                 "; stop it first, or give another --pidfile");
      }
      throw std::runtime_error("cannot lock pidfile " + path_.string() + ": " +
                               std::strerror(err));
    }
    if (still_named(fd_, path_)) {
      return;
    }
    ::close(fd_);
    fd_ = -1;
  }
  throw std::runtime_error("pidfile " + path_.string() +
                           " keeps being replaced; is another locomov starting and stopping?");
}

pidfile::~pidfile() {
  if (fd_ < 0) {
    return;
  }
  if (::unlink(path_.c_str()) != 0) {
    // An empty pidfile names nobody, and its lock goes with us.
    if (::ftruncate(fd_, 0) != 0) {
      // Nothing more to try; the lock still goes with us.
    }
  }
  ::close(fd_);
}

void pidfile::write_own_pid() {
  const auto text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    throw std::runtime_error("cannot write pidfile " + path_.string() + ": " + errno_text());
  }
}

start_report::~start_report() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

start_report::start_report(start_report&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

start_report& start_report::operator=(start_report&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void start_report::ready() { send(ready_message); }

void start_report::failed(const std::string& reason) { send(failed_prefix + reason); }

void start_report::send(const std::string& message) {
  if (fd_ < 0) {
    return;
  }
  // A parent gone already (killed while it waited) costs an EPIPE, with
  // SIGPIPE ignored; the daemon goes on either way.
  std::size_t done = 0;
  while (done < message.size()) {
    const ssize_t n = ::write(fd_, message.data() + done, message.size() - done);
    if (n <= 0 && errno != EINTR) {
      break;
    }
    done += n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  ::close(fd_);
  fd_ = -1;
}

start_report daemonize() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error("cannot make the start-up pipe: " + errno_text());
  }
  const pid_t child = ::fork();
  if (child < 0) {
    throw std::runtime_error("cannot fork: " + errno_text());
  }
  if (child > 0) {
    ::close(fds[1]);
    wait_for_child(fds[0], child);
  }
  ::close(fds[0]);

  // Out of the starting shell's session and its terminal's signals (SIGHUP
  // when it closes, Ctrl-C), and off any folder that may be unmounted.
  ::setsid();
  if (::chdir("/") != 0) {
    throw std::runtime_error("cannot change to /: " + errno_text());
  }
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) {
    throw std::runtime_error("cannot open /dev/null: " + errno_text());
  }
  for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
    ::dup2(null, fd);
  }
  ::close(null);
  return start_report(fds[1]);
}

}  // namespace locomov::app
