#include "actors/acme_actor.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>

#include <caf/all.hpp>

#include "acme/acme_client.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"

namespace locomov::actors {
namespace {

using check_atom = caf::atom_constant<caf::atom("acmecheck")>;
using system_clock = std::chrono::system_clock;

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(system_clock::now().time_since_epoch())
      .count();
}

std::int64_t unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  return ASN1_TIME_to_tm(t, &tm) == 1 ? static_cast<std::int64_t>(timegm(&tm)) : 0;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Writes `text` to `path` through a file renamed over it, so that a reader
/// never sees half of it.
void write_atomically(const std::filesystem::path& path, const std::string& text, bool secret) {
  const auto tmp = path.string() + ".new";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (secret) {
      ::chmod(tmp.c_str(), 0600);
    }
    out << text;
    out.close();
    if (!out) {
      throw std::runtime_error("cannot write " + tmp);
    }
  }
  std::filesystem::rename(tmp, path);
}

/// What the cached certificate says of itself.
struct cached {
  std::int64_t not_before = 0;
  std::int64_t not_after = 0;
  bool names_match = false;
};

std::optional<cached> read_cached(const acme_settings& s) {
  const auto pem = read_file(acme_cert_file(s));
  if (pem.empty() || !std::filesystem::exists(acme_key_file(s))) {
    return std::nullopt;
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (leaf == nullptr) {
    return std::nullopt;
  }
  cached c{unix_time(X509_get0_notBefore(leaf)), unix_time(X509_get0_notAfter(leaf)), true};
  for (const auto& name : s.names) {
    c.names_match =
        c.names_match && X509_check_host(leaf, name.c_str(), name.size(), 0, nullptr) == 1;
  }
  X509_free(leaf);
  return c;
}

/// The common name of the topmost issuer of a PEM chain.
std::string top_issuer(const std::string& chain_pem) {
  BIO* bio = BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size()));
  std::string cn;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_issuer_name(cert), NID_commonName, buf, sizeof buf);
    cn = buf;
    X509_free(cert);
  }
  BIO_free(bio);
  return cn;
}

struct acme_state {
  acme_settings settings;
  acme::challenge_responder responder;
  std::shared_ptr<const std::atomic<bool>> stopping;
  std::chrono::seconds backoff{0};
  std::uint64_t generation = 0;  // only the newest scheduled check counts
  metrics::counter* ordered = nullptr;
  metrics::counter* failed = nullptr;
  metrics::gauge* last_attempt = nullptr;
  metrics::gauge* last_success = nullptr;
  static inline const char* name = "acme";
};

using acme_actor = caf::stateful_actor<acme_state>;

void schedule(acme_actor* self, std::chrono::seconds after) {
  // A day at most, so that a clock step or an edited cache is seen.
  after = std::clamp(after, std::chrono::seconds(1), std::chrono::seconds(86400));
  self->delayed_send(self, after, check_atom::value, ++self->state.generation);
}

std::string account_key(const acme_settings& s) {
  const auto path = s.dir / "account.key";
  auto pem = read_file(path);
  if (pem.empty()) {
    pem = acme::make_account_key();
    write_atomically(path, pem, true);
    logs::app().info("ACME account key made file={}", path.string());
  }
  return pem;
}

void renew(acme_actor* self) {
  auto& st = self->state;
  const auto& s = st.settings;
  st.last_attempt->set(now_s());
  try {
    acme::client_settings cs;
    cs.directory_url = s.directory;
    cs.email = s.email;
    cs.ca_file = s.ca_file;
    cs.account_key_pem = account_key(s);
    cs.cancelled = st.stopping;
    acme::client client(cs);
    logs::app().info("ACME order placed names={} directory={} challenge={}", s.names.front(),
                     s.directory, st.responder.type);
    const auto got = client.order(s.names, st.responder, s.rsa);
    std::string chain = got.chain_pem;
    if (!s.preferred_chain.empty()) {
      std::vector<std::string> offered{got.chain_pem};
      offered.insert(offered.end(), got.alternate_chains_pem.begin(),
                     got.alternate_chains_pem.end());
      auto match = std::find_if(offered.begin(), offered.end(), [&](const std::string& c) {
        return top_issuer(c) == s.preferred_chain;
      });
      if (match == offered.end()) {
        throw acme::acme_error({}, "no chain the CA offers ends at \"" + s.preferred_chain +
                                       "\" (acme-preferred-chain)",
                               0);
      }
      chain = *match;
    }
    // The key first: the watcher takes the pair once both have settled.
    write_atomically(acme_key_file(s), got.key_pem, true);
    write_atomically(acme_cert_file(s), chain, false);
    st.ordered->inc();
    st.last_success->set(now_s());
    st.backoff = std::chrono::seconds(0);
    logs::app().info("ACME certificate obtained names={} file={} chain_root=\"{}\"",
                     s.names.front(), acme_cert_file(s).string(), top_issuer(chain));
    schedule(self, std::chrono::seconds(1));
  } catch (const std::exception& e) {
    if (st.stopping && st.stopping->load()) {
      logs::app().info("ACME order abandoned, locomov is stopping");
      return;
    }
    const auto* problem = dynamic_cast<const acme::acme_error*>(&e);
    st.failed->inc();
    st.backoff = st.backoff.count() == 0 ? s.first_retry : std::min(st.backoff * 2, s.max_retry);
    auto wait = st.backoff;
    if (problem != nullptr && problem->retry_after() > wait) {
      wait = problem->retry_after();
    }
    logs::app().error(
        "ACME order failed, the running certificate stays in service type=\"{}\" reason=\"{}\" "
        "retry_in={}s",
        problem != nullptr ? problem->type() : "", logs::one_line(e.what()), wait.count());
    schedule(self, wait);
  }
}

void check(acme_actor* self) {
  auto& st = self->state;
  const auto& s = st.settings;
  const auto c = read_cached(s);
  const auto now = now_s();
  if (c && c->names_match && c->not_after > now) {
    const auto lifetime = c->not_after - c->not_before;
    const auto due = c->not_after - static_cast<std::int64_t>(lifetime * s.renew_when_left);
    if (now < due) {
      logs::app().info("ACME certificate cached, no order expires_in={}s renew_in={}s",
                       c->not_after - now, due - now);
      schedule(self, std::chrono::seconds(due - now));
      return;
    }
  }
  logs::app().info("ACME certificate needed reason={}",
                   !c ? "none cached" : !c->names_match ? "names changed"
                                      : c->not_after <= now ? "expired" : "renewal due");
  renew(self);
}

caf::behavior acme_behavior(acme_actor* self, acme_settings settings,
                            acme::challenge_responder responder,
                            std::shared_ptr<const std::atomic<bool>> stopping) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.responder = std::move(responder);
  st.stopping = std::move(stopping);
  st.ordered = &metrics::get_counter("locomov_acme_orders_total", "result=\"ok\"",
                                     "ACME orders placed, by outcome");
  st.failed = &metrics::get_counter("locomov_acme_orders_total", "result=\"failed\"",
                                    "ACME orders placed, by outcome");
  st.last_attempt = &metrics::get_gauge("locomov_acme_last_attempt_timestamp_seconds", {},
                                        "When the last ACME order began, unix seconds");
  st.last_success = &metrics::get_gauge("locomov_acme_last_success_timestamp_seconds", {},
                                        "When the last ACME order succeeded, unix seconds");
  std::filesystem::create_directories(st.settings.dir);
  self->send(self, check_atom::value, st.generation);
  return {
      [self](check_atom, std::uint64_t generation) {
        if (generation == self->state.generation) {
          check(self);
        }
      },
      [self](renew_atom) {
        logs::app().info("ACME certificate needed reason=\"renewal asked\"");
        renew(self);
      },
  };
}

}  // namespace

std::filesystem::path acme_cert_file(const acme_settings& s) { return s.dir / "cert.pem"; }
std::filesystem::path acme_key_file(const acme_settings& s) { return s.dir / "key.pem"; }

caf::actor spawn_acme_actor(caf::actor_system& sys, acme_settings settings,
                            acme::challenge_responder responder,
                            std::shared_ptr<const std::atomic<bool>> stopping) {
  // Detached: an order blocks for as long as the CA takes.
  return sys.spawn<caf::detached>(acme_behavior, std::move(settings), std::move(responder),
                                  std::move(stopping));
}

}  // namespace locomov::actors
