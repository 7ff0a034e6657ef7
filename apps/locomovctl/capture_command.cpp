#include "apps/locomovctl/capture_command.hpp"

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "capture/import.hpp"
#include "protocol/packet_decoder.hpp"

namespace locomov::ctl {
namespace {

class capture_command final : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override {
    auto* app = parent.add_subcommand(
        "capture", "Make capture files for locomovctl replay from traffic you already have");
    app->require_subcommand(1);

    pcap_ = app->add_subcommand(
        "import-pcap",
        "A pcap or pcapng file (tcpdump -w, tshark -w) of the plaintext listener's traffic");
    pcap_->add_option("file", input_, "pcap or pcapng file")->required()->check(CLI::ExistingFile);
    pcap_->add_option("--port", port_, "The listener's port: streams to and from it are taken")
        ->required();
    pcap_->add_option("--listener", listener_,
                      "Listener the capture names: plain (the development listener), packet or "
                      "confo")
        ->check(CLI::IsMember({"plain", "packet", "confo"}))
        ->capture_default_str();
    pcap_->add_option("-o,--output", output_, "Capture file to write")->required();

    packets_ = app->add_subcommand("import-packets",
                                   "A file of JSON packets, one per line or concatenated");
    packets_->add_option("file", input_, "Packet file")->required()->check(CLI::ExistingFile);
    packets_->add_flag("--one-per-connection", one_per_connection_,
                       "Each packet on a connection of its own, as meters send today "
                       "(default: all on one connection)");
    packets_->add_option("--start", start_,
                         "Receipt time of the first packet, RFC 3339 (default: now); packets "
                         "without timestamp or timestr are stored at their receipt time");
    packets_->add_option("-o,--output", output_, "Capture file to write")->required();
    return app;
  }

  int run() override {
    try {
      capture::imported result;
      if (pcap_->parsed()) {
        result = capture::import_pcap(input_, port_, listener_);
      } else {
        std::int64_t start_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
        if (!start_.empty() && !protocol::parse_rfc3339(start_, start_us)) {
          std::cerr << "locomovctl capture: --start is not RFC 3339: " << start_ << "\n";
          return exit_usage;
        }
        std::ifstream in(input_, std::ios::binary);
        result = capture::import_packets(in, one_per_connection_, start_us);
      }
      std::ofstream out(output_, std::ios::trunc);
      capture::write_records(result.records, out);
      out.close();
      if (!out) {
        std::cerr << "locomovctl capture: cannot write " << output_ << "\n";
        return exit_failed;
      }
      for (const auto& warning : result.warnings) {
        std::cerr << "warning: " << warning << "\n";
      }
      std::cout << output_ << ": " << result.records.size() << " records, " << result.connections
                << " connections";
      if (pcap_->parsed()) {
        std::cout << ", " << result.frames_skipped << " TCP segments of other ports skipped";
      }
      std::cout << "\n";
      return result.connections > 0 ? 0 : exit_failed;
    } catch (const std::exception& e) {
      std::cerr << "locomovctl capture: " << e.what() << "\n";
      return exit_failed;
    }
  }

 private:
  CLI::App* pcap_ = nullptr;
  CLI::App* packets_ = nullptr;
  std::string input_;
  std::string output_;
  std::uint16_t port_ = 0;
  std::string listener_ = "plain";
  bool one_per_connection_ = false;
  std::string start_;
};

}  // namespace

std::unique_ptr<command> make_capture_command() { return std::make_unique<capture_command>(); }

}  // namespace locomov::ctl
