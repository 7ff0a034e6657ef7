#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

namespace locomov::acme {
struct challenge_responder;
}  // namespace locomov::acme

namespace locomov::actors {

/// Where certificates come from when locomov obtains them itself.
struct acme_settings {
  std::string directory;  ///< the CA's directory URL; empty: ACME is off
  std::string email;      ///< the account's contact
  std::string ca_file;    ///< trust for the CA's own HTTPS; empty: the system's
  std::vector<std::string> names;  ///< the first is served to devices that send no SNI
  bool rsa = true;                 ///< RSA-2048 keys, which the fleet needs; else P-256
  /// Renew once this fraction of the certificate's lifetime is left.
  double renew_when_left = 1.0 / 3;
  /// The common name of the root (or topmost issuer) the served chain must
  /// end at, among the CA's alternate chains; empty: the CA's default chain.
  std::string preferred_chain;
  std::filesystem::path dir;  ///< account.key, cert.pem and key.pem
  std::chrono::seconds first_retry{60};  ///< after a failed order, doubling...
  std::chrono::seconds max_retry{std::chrono::hours(6)};  ///< ...up to this
};

/// (renew) to the acme actor: order a certificate now, due or not (SIGUSR1).
using renew_atom = caf::atom_constant<caf::atom("acmerenew")>;

std::filesystem::path acme_cert_file(const acme_settings& s);
std::filesystem::path acme_key_file(const acme_settings& s);

/// Spawns the actor that keeps a certificate from the CA in
/// settings.dir: at start and whenever one is due, it checks the cached
/// certificate and, when there is none, it is expired, its names differ or
/// `renew_when_left` of its lifetime is left, orders one (on a thread of
/// its own, since the ACME exchange blocks), answering the challenges
/// through `responder` (HTTP-01 or TLS-ALPN-01). The new pair is written
/// over cert.pem and key.pem, which the daemon watches
/// (tls-watch-interval) and serves to new handshakes. A
/// failure keeps the running certificate, is logged with the CA's problem
/// type and retried after the CA's Retry-After or a doubling back-off.
/// Setting `stopping` abandons an order under way within about a second,
/// so that a stop need not wait for a CA that does not answer.
caf::actor spawn_acme_actor(caf::actor_system& sys, acme_settings settings,
                            acme::challenge_responder responder,
                            std::shared_ptr<const std::atomic<bool>> stopping);

}  // namespace locomov::actors
