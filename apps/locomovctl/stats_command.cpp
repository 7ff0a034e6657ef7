#include "apps/locomovctl/stats_command.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <httplib.h>
#include <CLI/CLI.hpp>

#include "apps/locomovctl/stats_view.hpp"

namespace locomov::ctl {
namespace {

using namespace std::chrono_literals;

volatile std::sig_atomic_t interrupted = 0;

void on_interrupt(int) { interrupted = 1; }

/// Ctrl-C ends the live view between refreshes, with status 0.
void catch_interrupt() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
}

/// Sleeps until `until` or Ctrl-C, whichever comes first. Short slices bound
/// how late an interrupt that lands just before a sleep is noticed.
void sleep_until(std::chrono::steady_clock::time_point until) {
  while (interrupted == 0) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= 0s) {
      return;
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, 100ms));
  }
}

std::string failure_reason(httplib::Error e, double timeout_s) {
  std::ostringstream within;
  within << " within " << timeout_s << " s";
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect (refused, or the host is unknown or unreachable)";
    case httplib::Error::ConnectionTimeout:
      return "no connection" + within.str();
    case httplib::Error::Read:
      return "no complete response" + within.str();
    case httplib::Error::Write:
      return "cannot send the request";
    default:
      return "HTTP client error " + httplib::to_string(e);
  }
}

/// A /stats body, or why there is none.
struct fetched {
  std::optional<std::string> body;
  std::string error;
};

class stats_command final : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override {
    auto* app = parent.add_subcommand(
        "stats", "Show the daemon's actors, connections, packets, writers and spool, live");
    app->add_option("--url", url_text_,
                    "Status endpoint (plain HTTP); /stats is added unless the path ends in it")
        ->capture_default_str();
    auto* interval =
        app->add_option("--interval", interval_text_, "Time between refreshes: 200ms, 1s, 2m")
            ->capture_default_str();
    auto* count = app->add_option("--count", count_, "Refreshes before exiting (0: until Ctrl-C)")
                      ->capture_default_str()
                      ->check(CLI::NonNegativeNumber);
    app->add_flag("--json", json_, "Print /stats once, as the daemon wrote it, and exit")
        ->excludes(interval)
        ->excludes(count);
    app->add_option("--timeout", timeout_s_, "Seconds allowed to connect and to get the answer")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    return app;
  }

  int run() override {
    try {
      url_ = parse_stats_url(url_text_);
      interval_ = parse_interval(interval_text_);
    } catch (const std::invalid_argument& e) {
      std::cerr << "locomovctl stats: " << e.what() << '\n';
      return exit_usage;
    }
    const bool ipv6 = url_.host.find(':') != std::string::npos;
    shown_url_ = "http://" + (ipv6 ? "[" + url_.host + "]" : url_.host) + ":" +
                 std::to_string(url_.port) + url_.path;
    return json_ ? print_json() : run_live();
  }

 private:
  fetched fetch() const {
    httplib::Client client(url_.host, url_.port);
    const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s_ * 1000));
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    const auto res = client.Get(url_.path.c_str());
    if (!res) {
      return {std::nullopt, failure_reason(res.error(), timeout_s_)};
    }
    if (res->status != 200) {
      return {std::nullopt, "answered HTTP " + std::to_string(res->status)};
    }
    return {res->body, {}};
  }

  /// The body of one poll parsed, or the reason it failed in `error`.
  std::optional<stats_snapshot> poll(std::string& error) const {
    const auto got = fetch();
    if (!got.body) {
      error = got.error;
      return std::nullopt;
    }
    try {
      return parse_stats(*got.body, std::chrono::steady_clock::now());
    } catch (const stats_format_error& e) {
      error = std::string("not a /stats document: ") + e.what();
      return std::nullopt;
    }
  }

  int print_json() const {
    const auto got = fetch();
    if (!got.body) {
      std::cerr << "locomovctl stats: " << shown_url_ << ": " << got.error << '\n';
      return exit_failed;
    }
    // Checked so that a wrong URL (another server's page) fails loudly; the
    // text printed is still the daemon's, byte for byte.
    try {
      parse_stats(*got.body, std::chrono::steady_clock::now());
    } catch (const stats_format_error& e) {
      std::cerr << "locomovctl stats: " << shown_url_ << ": not a /stats document: " << e.what()
                << '\n';
      return exit_failed;
    }
    std::cout << *got.body;
    if (got.body->empty() || got.body->back() != '\n') {
      std::cout << '\n';
    }
    std::cout << std::flush;
    return 0;
  }

  int run_live() const {
    catch_interrupt();
    const bool tty = isatty(STDOUT_FILENO) == 1;
    const auto start = std::chrono::steady_clock::now();
    std::optional<stats_snapshot> last;
    bool last_ok = false;
    for (int n = 0; count_ == 0 || n < count_; ++n) {
      sleep_until(start + n * interval_);
      if (interrupted != 0) {
        break;
      }

      std::string error;
      auto snap = poll(error);
      if (!snap && n == 0) {
        std::cerr << "locomovctl stats: " << shown_url_ << ": " << error << '\n';
        return exit_failed;
      }
      // Later failures (a daemon restarting) are shown and polling goes on.
      std::string block;
      if (snap) {
        block = render_stats(*snap, last ? &*last : nullptr, shown_url_);
      } else {
        block = "locomov at " + shown_url_ + ": " + error + "\n";
      }
      last_ok = snap.has_value();
      last = std::move(snap);

      if (tty) {
        std::cout << "\x1b[H\x1b[2J" << block << std::flush;
      } else {
        std::cout << (n > 0 ? "\n" : "") << block << std::flush;
      }
    }
    return interrupted != 0 || last_ok ? 0 : exit_failed;
  }

  std::string url_text_ = "http://127.0.0.1:38980";
  std::string interval_text_ = "1s";
  int count_ = 0;
  bool json_ = false;
  double timeout_s_ = 5;
  stats_url url_;
  std::chrono::milliseconds interval_{1000};
  std::string shown_url_;
};

}  // namespace

std::unique_ptr<command> make_stats_command() { return std::make_unique<stats_command>(); }

}  // namespace locomov::ctl
