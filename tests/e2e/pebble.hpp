#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/e2e/process.hpp"
#include "tests/support/scratch_dir.hpp"

namespace locomov::test {

/// Pebble, the ACME test CA (Debian's `pebble`), and pebble-challtestsrv
/// as its DNS, answering every name with 127.0.0.1: started on free
/// loopback ports for one test, with `env` ("PEBBLE_WFE_NONCEREJECT=50",
/// ...) in Pebble's environment, and stopped with it. Pebble validates
/// HTTP-01 on http01_port() and TLS-ALPN-01 on tls_alpn_port().
class pebble_ca {
 public:
  /// `tls_alpn_port` 0 picks a free port for TLS-ALPN-01 validations.
  explicit pebble_ca(const std::vector<std::string>& env, int tls_alpn_port = 0);
  std::string directory() const;
  std::string ca_file() const;
  int http01_port() const { return http01_port_; }
  int tls_alpn_port() const { return tls_alpn_port_; }
  /// The root Pebble issues under (index 0, or an alternate), PEM.
  std::string root(int index) const;
  std::string log() const { return pebble_->output(); }

 private:
  scratch_dir dir_;
  int acme_port_ = 0;
  int management_port_ = 0;
  int http01_port_ = 0;
  int tls_alpn_port_ = 0;
  int dns_port_ = 0;
  std::unique_ptr<process> dns_;
  std::unique_ptr<process> pebble_;
};

}  // namespace locomov::test
