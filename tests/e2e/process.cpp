#include "tests/e2e/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace locomov::test {
namespace {

pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, int out_fd,
            std::uint64_t open_files = 0) {
  std::vector<char*> args;
  for (auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    // A test binary that dies must not leave a daemon (and its cluster) behind.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(stdin_fd, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    if (open_files != 0) {
      const rlimit lim{static_cast<rlim_t>(open_files), static_cast<rlim_t>(open_files)};
      if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        _exit(126);
      }
    }
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int decode_status(int raw) {
  if (WIFEXITED(raw)) {
    return WEXITSTATUS(raw);
  }
  return 128 + WTERMSIG(raw);
}

}  // namespace

process::process(const std::vector<std::string>& argv, const std::filesystem::path& log,
                 std::uint64_t open_files)
    : log_(log) {
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_ = spawn(argv, in, out, open_files);
  close(out);
  close(in);
}

process::~process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
}

void process::signal(int sig) {
  if (running()) {
    ::kill(pid_, sig);
  }
}

bool process::running() {
  if (status_ != -1) {
    return false;
  }
  int raw = 0;
  if (waitpid(pid_, &raw, WNOHANG) == pid_) {
    status_ = decode_status(raw);
    return false;
  }
  return true;
}

int process::wait(std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (running()) {
    if (std::chrono::steady_clock::now() >= until) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

std::string process::output() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t process::open_descriptors() const {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(pid_) + "/fd", ec);
  std::size_t n = 0;
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string proc_status(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const auto prefix = field + ":";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) {
      const auto start = line.find_first_not_of(" \t", prefix.size());
      return start == std::string::npos ? std::string() : line.substr(start);
    }
  }
  return {};
}

command_result run_command(const std::vector<std::string>& argv, const std::string& input,
                           std::chrono::milliseconds limit, const std::string& stop_at) {
  char out_path[] = "/tmp/locomov-cmd-XXXXXX";
  int out = mkstemp(out_path);
  int pipe_fds[2];
  if (out < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) {
    throw std::runtime_error("cannot set up command I/O");
  }
  pid_t pid = spawn(argv, pipe_fds[0], out);
  close(pipe_fds[0]);
  close(out);
  // Small inputs fit the pipe buffer, so writing before waiting cannot block.
  if (!input.empty() && ::write(pipe_fds[1], input.data(), input.size()) < 0) {
    close(pipe_fds[1]);
    throw std::runtime_error("cannot write command input");
  }
  close(pipe_fds[1]);

  command_result result;
  auto until = std::chrono::steady_clock::now() + limit;
  int raw = 0;
  while (waitpid(pid, &raw, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= until ||
        (!stop_at.empty() && read_file(out_path).find(stop_at) != std::string::npos)) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &raw, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.status = decode_status(raw);
  result.output = read_file(out_path);
  unlink(out_path);
  return result;
}

}  // namespace locomov::test
