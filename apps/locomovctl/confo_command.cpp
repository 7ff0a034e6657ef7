#include "apps/locomovctl/confo_command.hpp"

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "apps/locomovctl/client_connection.hpp"
#include "apps/locomovctl/json_values.hpp"

namespace locomov::ctl {
namespace {

// Exit statuses: 0 every confo answered `OK.` (query: found), 1 otherwise or
// on a connection problem, 2 usage, 3 query answered 404.
constexpr int exit_not_found = 3;

/// Where to connect and how to trust the server, shared by both commands.
struct endpoint {
  std::string host = "127.0.0.1";
  int port = 38979;
  std::string ca_file;
  bool insecure = false;
  std::string servername;
  double timeout_s = 10;

  void add_to(CLI::App* app) {
    app->add_option("--host", host, "Server address")->capture_default_str();
    app->add_option("--port", port, "Confirmation port")
        ->capture_default_str()
        ->check(CLI::Range(1, 65535));
    auto* ca = app->add_option("--ca", ca_file,
                               "PEM file of the CA that signed the server certificate")
                   ->check(CLI::ExistingFile);
    app->add_flag("--insecure", insecure, "Do not verify the server certificate")->excludes(ca);
    app->add_option("--servername", servername,
                    "Name to check the certificate against (default: --host)");
    app->add_option("--timeout", timeout_s, "Seconds allowed for each step")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
  }

  const std::string& name() const { return servername.empty() ? host : servername; }

  bool verifiable(const char* command) const {
    if (ca_file.empty() && !insecure) {
      std::cerr << "locomovctl " << command
                << ": give --ca FILE to verify the server, or --insecure to skip verification\n";
      return false;
    }
    return true;
  }
};

std::string read_all(std::istream& in) {
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class confo_command : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override {
    auto* app = parent.add_subcommand("confo", "Post confirmations as a meter does and print "
                                               "the replies");
    where_.add_to(app);
    auto* file = app->add_option("--file", file_, "File of confos, one per line or concatenated")
                     ->check(CLI::ExistingFile);
    auto* from_stdin = app->add_flag("--stdin", from_stdin_, "Read confos from stdin");
    auto* json = app->add_option("--json", json_, "The confo(s) as JSON text");
    name_ = app->add_option("--device-name", fields_.device_name, "deviceName");
    app->add_option("--ssid", fields_.ssid, "ssid");
    email_ = app->add_option("--email", email_value_, "email of the subscriber");
    hash_ = app->add_option("--hash", hash_value_, "hash (an INTEGER)");
    timestamp_ = app->add_option("--timestamp", fields_.timestamp, "Unix seconds (default: now)");
    coords_ = app->add_option("--coords", coords_value_, "\"lng/lat\"");
    for (auto* source : {file, static_cast<CLI::Option*>(from_stdin), json}) {
      for (auto* flag : {name_, email_, hash_, timestamp_, coords_}) {
        source->excludes(flag);
      }
    }
    file->excludes(from_stdin)->excludes(json);
    from_stdin->excludes(json);
    return app;
  }

  int run() override {
    if (!where_.verifiable("confo")) {
      return exit_usage;
    }
    std::vector<std::string> confos;
    try {
      confos = load();
    } catch (const std::exception& e) {
      std::cerr << "locomovctl confo: " << e.what() << '\n';
      return exit_usage;
    }
    client_tls_settings tls;
    tls.ca_file = where_.ca_file;
    tls.insecure = where_.insecure;
    int status = 0;
    try {
      auto ctx = make_client_context(tls);
      client_connection conn(where_.host, static_cast<std::uint16_t>(where_.port), ctx.get(),
                             where_.name(),
                             std::chrono::milliseconds(static_cast<long>(where_.timeout_s * 1000)));
      for (const auto& c : confos) {
        conn.write_all(c + "\n");
        std::string line;
        if (!conn.read_line(line)) {
          std::cout << "[connection closed by the server]\n";
          return exit_failed;
        }
        std::cout << line << '\n';
        status = line == "OK." ? status : exit_failed;
      }
      conn.close();
    } catch (const std::exception& e) {
      std::cerr << "locomovctl confo: " << e.what() << '\n';
      return exit_failed;
    }
    return status;
  }

 private:
  std::vector<std::string> load() {
    if (!file_.empty()) {
      std::ifstream in(file_, std::ios::binary);
      return split_json_values(read_all(in));
    }
    if (from_stdin_) {
      return split_json_values(read_all(std::cin));
    }
    if (!json_.empty()) {
      return split_json_values(json_);
    }
    if (fields_.device_name.empty() || fields_.ssid.empty()) {
      throw std::runtime_error("say what to post: --json, --file, --stdin, or --device-name "
                               "and --ssid (with optional --email, --hash, --timestamp, "
                               "--coords)");
    }
    if (email_->count() > 0) {
      fields_.email = email_value_;
    }
    if (hash_->count() > 0) {
      fields_.hash = hash_value_;
    }
    if (coords_->count() > 0) {
      fields_.coords = coords_value_;
    }
    if (timestamp_->count() == 0) {
      fields_.timestamp = static_cast<std::int64_t>(std::time(nullptr));
    }
    return {confo_json(fields_)};
  }

  endpoint where_;
  std::string file_;
  bool from_stdin_ = false;
  std::string json_;
  confo_fields fields_;
  std::string email_value_;
  std::int64_t hash_value_ = 0;
  std::string coords_value_;
  CLI::Option* name_ = nullptr;
  CLI::Option* email_ = nullptr;
  CLI::Option* hash_ = nullptr;
  CLI::Option* timestamp_ = nullptr;
  CLI::Option* coords_ = nullptr;
};

std::size_t collect(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

class query_command : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override {
    auto* app = parent.add_subcommand(
        "query", "Ask for the hash of the last confo of a device name and SSID, as the app does");
    where_.add_to(app);
    app->add_option("device_name", device_name_, "deviceName")->required();
    app->add_option("ssid", ssid_, "ssid")->required();
    app->add_option("--path-prefix", prefix_, "Path the app uses")
        ->capture_default_str()
        ->check(CLI::IsMember({"/api/confo", "/confo"}));
    app->add_flag("--verbose", verbose_, "Print the HTTP status to stderr");
    return app;
  }

  int run() override {
    if (!where_.verifiable("query")) {
      return exit_usage;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL* curl = curl_easy_init();
    const auto url = query_url(where_.name(), where_.port, prefix_, device_name_, ssid_);
    // Connect to --host while checking the certificate against the name.
    const std::string connect_to = where_.name() + ":" + std::to_string(where_.port) + ":" +
                                   where_.host + ":" + std::to_string(where_.port);
    curl_slist* route = curl_slist_append(nullptr, connect_to.c_str());
    std::string body;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CONNECT_TO, route);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(where_.timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    if (where_.insecure) {
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
      curl_easy_setopt(curl, CURLOPT_CAINFO, where_.ca_file.c_str());
    }
    const CURLcode rc = curl_easy_perform(curl);
    long http_status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(route);
    curl_global_cleanup();
    if (rc != CURLE_OK) {
      std::cerr << "locomovctl query: " << curl_easy_strerror(rc) << '\n';
      return exit_failed;
    }
    if (verbose_) {
      std::cerr << "GET " << url << ": " << http_status << '\n';
    }
    if (http_status == 200) {
      std::cout << body << '\n';
      return 0;
    }
    if (http_status == 404) {
      std::cerr << "not found\n";
      return exit_not_found;
    }
    std::cerr << "locomovctl query: HTTP " << http_status << ": " << body << '\n';
    return exit_failed;
  }

 private:
  endpoint where_;
  std::string device_name_;
  std::string ssid_;
  std::string prefix_ = "/api/confo";
  bool verbose_ = false;
};

/// Percent-encodes one path segment: everything but RFC 3986's unreserved
/// characters, '/' included.
std::string escape_segment(const std::string& segment) {
  char* escaped = curl_easy_escape(nullptr, segment.data(), static_cast<int>(segment.size()));
  std::string out = escaped != nullptr ? escaped : "";
  curl_free(escaped);
  return out;
}

}  // namespace

std::string confo_json(const confo_fields& f) {
  nlohmann::ordered_json j;
  j["deviceName"] = f.device_name;
  j["ssid"] = f.ssid;
  j["timestamp"] = f.timestamp;
  if (f.hash) {
    j["hash"] = *f.hash;
  }
  if (f.email) {
    j["email"] = *f.email;
  }
  if (f.coords) {
    j["coords"] = *f.coords;
  }
  return j.dump();
}

std::string query_url(const std::string& servername, int port, const std::string& prefix,
                      const std::string& device_name, const std::string& ssid) {
  const bool ipv6 = servername.find(':') != std::string::npos;
  return "https://" + (ipv6 ? "[" + servername + "]" : servername) + ":" + std::to_string(port) +
         prefix + "/" + escape_segment(device_name) + "/" + escape_segment(ssid);
}

std::unique_ptr<command> make_confo_command() { return std::make_unique<confo_command>(); }
std::unique_ptr<command> make_query_command() { return std::make_unique<query_command>(); }

}  // namespace locomov::ctl
