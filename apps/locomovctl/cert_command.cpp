#include "apps/locomovctl/cert_command.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/locomovctl/client_connection.hpp"

namespace locomov::ctl {
namespace {

std::string name_text(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::int64_t unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  return ASN1_TIME_to_tm(t, &tm) == 1 ? static_cast<std::int64_t>(timegm(&tm)) : 0;
}

std::string utc(std::int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += fmt::format("{}{:02X}", i == 0 ? "" : ":", md[i]);
  }
  return out;
}

std::string serial(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::vector<std::string> names(X509* cert) {
  std::vector<std::string> out;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_DNS) {
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                       static_cast<std::size_t>(ASN1_STRING_length(gn->d.dNSName)));
    } else if (gn->type == GEN_IPADD) {
      const auto* ip = ASN1_STRING_get0_data(gn->d.iPAddress);
      const int len = ASN1_STRING_length(gn->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = {};
      if ((len == 4 || len == 16) &&
          inet_ntop(len == 4 ? AF_INET : AF_INET6, ip, text, sizeof text) != nullptr) {
        out.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(sans);
  return out;
}

class cert_command final : public command {
 public:
  CLI::App* add_to(CLI::App& parent) override {
    auto* app = parent.add_subcommand(
        "cert", "Show the certificate a TLS port serves, and its chain, as a device sees them");
    app->add_option("--host", host_, "Server address")->capture_default_str();
    app->add_option("--port", port_, "TLS port (packet port by default)")
        ->capture_default_str()
        ->check(CLI::Range(1, 65535));
    auto* ca = app->add_option("--ca", ca_file_,
                               "Verify the chain against this CA file too (default: only show it)")
                   ->check(CLI::ExistingFile);
    app->add_option("--servername", servername_, "SNI to send; default: none, as devices do")
        ->needs(ca);
    app->add_option("--warn-days", warn_days_,
                    "Exit 1 when the certificate expires within this many days")
        ->check(CLI::NonNegativeNumber);
    app->add_flag("--json", json_, "Print the chain as JSON");
    return app;
  }

  int run() override {
    try {
      client_tls_settings tls;
      tls.ca_file = ca_file_;
      tls.insecure = ca_file_.empty();
      auto ctx = make_client_context(tls);
      client_connection conn(host_, static_cast<std::uint16_t>(port_), ctx.get(),
                             servername_.empty() ? host_ : servername_,
                             std::chrono::seconds(10));
      STACK_OF(X509)* chain = SSL_get_peer_cert_chain(conn.tls());
      if (chain == nullptr || sk_X509_num(chain) == 0) {
        std::cerr << "locomovctl cert: the server sent no certificate\n";
        return exit_failed;
      }
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      nlohmann::json doc{{"server", fmt::format("{}:{}", host_, port_)},
                         {"session", conn.description()},
                         {"verified", !ca_file_.empty()},
                         {"chain", nlohmann::json::array()}};
      std::int64_t leaf_expiry = 0;
      for (int i = 0; i < sk_X509_num(chain); ++i) {
        X509* cert = sk_X509_value(chain, i);
        const auto not_after = unix_time(X509_get0_notAfter(cert));
        if (i == 0) {
          leaf_expiry = not_after;
        }
        nlohmann::json c{{"subject", name_text(X509_get_subject_name(cert))},
                         {"issuer", name_text(X509_get_issuer_name(cert))},
                         {"serial", serial(cert)},
                         {"not_before", utc(unix_time(X509_get0_notBefore(cert)))},
                         {"not_after", utc(not_after)},
                         {"days_left", (not_after - now) / 86400},
                         {"sha256", fingerprint(cert)}};
        if (i == 0) {
          c["names"] = names(cert);
        }
        doc["chain"].push_back(c);
      }
      const auto session = conn.description();
      conn.close();
      if (json_) {
        std::cout << doc.dump(2) << "\n";
      } else {
        std::cout << doc["server"].get<std::string>() << ", " << session << ", "
                  << (ca_file_.empty() ? "chain not verified (no --ca)" : "chain verified")
                  << "\n";
        int i = 0;
        for (const auto& c : doc["chain"]) {
          std::cout << (i == 0 ? "certificate" : "chain " + std::to_string(i)) << "\n"
                    << "  subject     " << c["subject"].get<std::string>() << "\n"
                    << "  issuer      " << c["issuer"].get<std::string>() << "\n"
                    << "  serial      " << c["serial"].get<std::string>() << "\n"
                    << "  valid       " << c["not_before"].get<std::string>() << " to "
                    << c["not_after"].get<std::string>() << " (" << c["days_left"].get<long>()
                    << " days left)\n"
                    << "  sha256      " << c["sha256"].get<std::string>() << "\n";
          if (c.contains("names")) {
            std::string joined;
            for (const auto& n : c["names"]) {
              joined += (joined.empty() ? "" : ", ") + n.get<std::string>();
            }
            std::cout << "  names       " << joined << "\n";
          }
          ++i;
        }
      }
      if (warn_days_ >= 0 && leaf_expiry - now < static_cast<std::int64_t>(warn_days_ * 86400)) {
        std::cerr << "locomovctl cert: the certificate expires within " << warn_days_ << " days\n";
        return exit_failed;
      }
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "locomovctl cert: " << e.what() << "\n";
      return exit_failed;
    }
  }

 private:
  std::string host_ = "127.0.0.1";
  int port_ = 38981;
  std::string ca_file_;
  std::string servername_;
  double warn_days_ = -1;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<command> make_cert_command() { return std::make_unique<cert_command>(); }

}  // namespace locomov::ctl
