#include "net/tls_context.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ctime>
#include <stdexcept>
#include <system_error>

#include "net/openssl_error.hpp"
#include "net/tls_alpn_challenges.hpp"

namespace locomov::net {

void ssl_ctx_deleter::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

namespace {

namespace fs = std::filesystem;

template <auto Free>
struct openssl_deleter {
  template <class T>
  void operator()(T* ptr) const {
    Free(ptr);
  }
};

using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using extension_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION_free>>;
using general_name_ptr = std::unique_ptr<GENERAL_NAME, openssl_deleter<GENERAL_NAME_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_deleter<GENERAL_NAMES_free>>;
using octet_string_ptr =
    std::unique_ptr<ASN1_OCTET_STRING, openssl_deleter<ASN1_OCTET_STRING_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;

/// Security level pinned for every context; see make_server_context.
constexpr int security_level = 2;

/// Session id context: OpenSSL refuses to resume sessions without one once a server cache
/// is on, and it keeps sessions of other applications sharing a cache apart.
constexpr unsigned char session_id_context[] = "locomov";

[[noreturn]] void fail_setting(const std::string& what) {
  throw std::runtime_error("TLS " + what + ": " + detail::take_openssl_error());
}

int parse_min_version(const std::string& text) {
  if (text == "TLSv1.2") {
    return TLS1_2_VERSION;
  }
  if (text == "TLSv1.3") {
    return TLS1_3_VERSION;
  }
  throw std::runtime_error("TLS min_version '" + text + "': must be TLSv1.2 or TLSv1.3");
}

bool has_tls13_suite(SSL_CTX* ctx) {
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    if (SSL_CIPHER_get_kx_nid(sk_SSL_CIPHER_value(ciphers, i)) == NID_kx_any) {
      return true;
    }
  }
  return false;
}

void load_key_pair(SSL_CTX* ctx, const tls_settings& settings) {
  const std::string cert = settings.cert_file.string();
  const std::string key = settings.key_file.string();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    fail_setting("cert_file '" + cert + "'");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail_setting("key_file '" + key + "'");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail_setting("key_file '" + key + "' does not match cert_file '" + cert + "'");
  }
}

void free_groups(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::string*>(ptr);
}

/// Where a server context keeps its `groups` setting.
int groups_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_groups);
  return index;
}

}  // namespace

std::string configured_groups(const SSL_CTX* ctx) {
  const auto* groups = static_cast<const std::string*>(SSL_CTX_get_ex_data(ctx, groups_index()));
  return groups != nullptr ? *groups : std::string{};
}

ssl_ctx_ptr make_server_context(const tls_settings& settings) {
  const int min_version = parse_min_version(settings.min_version);

  ERR_clear_error();
  std::unique_ptr<SSL_CTX, ssl_ctx_deleter> ctx{SSL_CTX_new(TLS_server_method())};
  if (!ctx) {
    fail_setting("context");
  }
  if (SSL_CTX_set_min_proto_version(ctx.get(), min_version) != 1) {
    fail_setting("min_version '" + settings.min_version + "'");
  }

  // Level 2 (112-bit security: RSA >= 2048 bits, no SHA-1 signatures) still allows the
  // fleet's TLS_RSA_WITH_AES_256_CBC_SHA, which has no forward secrecy and so dies at level
  // 3. Debian builds OpenSSL with 2 as its default, but openssl.cnf may change that on a
  // host; pinning it keeps the fleet connecting wherever we run. It is set before the
  // cipher list so that "@SECLEVEL=n" in `ciphers` can still override it on purpose.
  SSL_CTX_set_security_level(ctx.get(), security_level);

  if (SSL_CTX_set_cipher_list(ctx.get(), settings.ciphers.c_str()) != 1) {
    fail_setting("ciphers '" + settings.ciphers + "'");
  }
  if (SSL_CTX_set_ciphersuites(ctx.get(), settings.ciphersuites.c_str()) != 1) {
    fail_setting("ciphersuites '" + settings.ciphersuites + "'");
  }
  // OpenSSL skips unknown TLS 1.3 suite names silently; a list of typos would quietly turn
  // TLS 1.3 off. An empty list is a deliberate way to do that (unless 1.3 is the minimum).
  if ((!settings.ciphersuites.empty() || min_version == TLS1_3_VERSION) &&
      !has_tls13_suite(ctx.get())) {
    throw std::runtime_error("TLS ciphersuites '" + settings.ciphersuites +
                             "': no TLS 1.3 suite matched");
  }
  if (SSL_CTX_set1_groups_list(ctx.get(), settings.groups.c_str()) != 1) {
    fail_setting("groups '" + settings.groups + "'");
  }
  auto groups = std::make_unique<std::string>(settings.groups);
  if (SSL_CTX_set_ex_data(ctx.get(), groups_index(), groups.get()) == 1) {
    groups.release();  // freed with the context
  }
  load_key_pair(ctx.get(), settings);
  if (settings.alpn_challenges) {
    tls_alpn_challenges::install(ctx.get(), settings.alpn_challenges);
  }

  // Our cipher order puts forward secrecy first; clients like SimpleLink lead with RSA
  // key exchange and would get it if they chose.
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  // Idle connections from thousands of meters would otherwise hold ~34 KiB of buffers each.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);

  // Meters reconnect often; resumption saves them the RSA handshake. TLS 1.2 uses the
  // server cache or tickets, TLS 1.3 tickets (on by default, keys random per context).
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  if (SSL_CTX_set_session_id_context(ctx.get(), session_id_context,
                                     sizeof(session_id_context) - 1) != 1) {
    fail_setting("session id context");
  }

  return ssl_ctx_ptr{ctx.release(), ssl_ctx_deleter{}};
}

namespace {

std::string fingerprint(const X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), digest.data(), &size) != 1) {
    return {};
  }
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string text;
  for (unsigned int i = 0; i < size; ++i) {
    if (i != 0) {
      text.push_back(':');
    }
    text.push_back(hex[digest[i] >> 4]);
    text.push_back(hex[digest[i] & 0xf]);
  }
  return text;
}

}  // namespace

std::vector<std::string> certificate_fingerprints(SSL_CTX* ctx) {
  std::vector<std::string> result;
  const X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf == nullptr) {
    return result;
  }
  result.push_back(fingerprint(leaf));
  STACK_OF(X509)* chain = nullptr;
  if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != nullptr) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      result.push_back(fingerprint(sk_X509_value(chain, i)));
    }
  }
  return result;
}

std::int64_t certificate_not_after(SSL_CTX* ctx) {
  const X509* leaf = SSL_CTX_get0_certificate(ctx);
  std::tm tm{};
  if (leaf == nullptr || ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1) {
    return 0;
  }
  return static_cast<std::int64_t>(timegm(&tm));
}

namespace {

[[noreturn]] void fail_pki(const std::string& what) {
  throw std::runtime_error("self-signed TLS files: " + what + ": " + detail::take_openssl_error());
}

[[noreturn]] void fail_errno(const std::string& what, int err) {
  throw std::runtime_error("self-signed TLS files: " + what + ": " +
                           std::generic_category().message(err));
}

evp_pkey_ptr make_rsa_key() {
  evp_pkey_ptr key{EVP_RSA_gen(2048)};
  if (!key) {
    fail_pki("generating an RSA-2048 key");
  }
  return key;
}

std::string local_hostname() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0 || buf[0] == '\0') {
    return "unknown host";
  }
  return buf.data();
}

/// Sets a random positive 159-bit serial, as RFC 5280 asks (unique, at most 20 octets).
void set_random_serial(X509* cert) {
  std::array<unsigned char, 20> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    fail_pki("generating a serial number");
  }
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x01);
  bn_ptr serial{BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr)};
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    fail_pki("setting a serial number");
  }
}

/// A fresh v3 certificate for `key`, valid from an hour ago (meters' clocks drift) for
/// `days` days, with subject CN `common_name`.
x509_ptr make_certificate(EVP_PKEY* key, const std::string& common_name, long days) {
  x509_ptr cert{X509_new()};
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    fail_pki("creating a certificate");
  }
  set_random_serial(cert.get());
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 * 60) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(days), 0, nullptr) ==
          nullptr) {
    fail_pki("setting validity");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const auto* cn = reinterpret_cast<const unsigned char*>(common_name.c_str());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, cn, -1, -1, 0) != 1) {
    fail_pki("setting subject CN '" + common_name + "'");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) {
    fail_pki("setting the public key");
  }
  return cert;
}

/// Adds an extension written in OpenSSL's config syntax; `issuer` supplies the authority
/// key identifier.
void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
  extension_ptr ext{X509V3_EXT_conf_nid(nullptr, &v3, nid, value)};
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail_pki(std::string{"adding "} + OBJ_nid2sn(nid) + " " + value);
  }
}

/// Returns the 4 or 16 address bytes when `name` is an IPv4 or IPv6 literal ("[::1]" too).
std::string parse_ip(const std::string& name) {
  std::string text = name;
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  std::array<unsigned char, 16> addr{};
  if (inet_pton(AF_INET, text.c_str(), addr.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(addr.data()), 4);
  }
  if (inet_pton(AF_INET6, text.c_str(), addr.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(addr.data()), 16);
  }
  return {};
}

bool is_dns_name(const std::string& name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == '*';
    if (!ok) {
      return false;
    }
  }
  return true;
}

general_name_ptr make_general_name(const std::string& name) {
  general_name_ptr gen{GENERAL_NAME_new()};
  if (!gen) {
    fail_pki("allocating subjectAltName");
  }
  if (const std::string ip = parse_ip(name); !ip.empty()) {
    octet_string_ptr value{ASN1_OCTET_STRING_new()};
    const auto* bytes = reinterpret_cast<const unsigned char*>(ip.data());
    if (!value || ASN1_OCTET_STRING_set(value.get(), bytes, static_cast<int>(ip.size())) != 1) {
      fail_pki("encoding IP address '" + name + "'");
    }
    GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, value.release());
    return gen;
  }
  if (!is_dns_name(name)) {
    throw std::runtime_error("self-signed TLS files: '" + name +
                             "' is neither an IP address nor a DNS name (use A-label form)");
  }
  ASN1_IA5STRING* value = ASN1_IA5STRING_new();
  if (value == nullptr || ASN1_STRING_set(value, name.data(), static_cast<int>(name.size())) != 1) {
    ASN1_IA5STRING_free(value);
    fail_pki("encoding DNS name '" + name + "'");
  }
  GENERAL_NAME_set0_value(gen.get(), GEN_DNS, value);
  return gen;
}

void add_subject_alt_names(X509* cert, const std::vector<std::string>& names) {
  general_names_ptr sans{sk_GENERAL_NAME_new_null()};
  if (!sans) {
    fail_pki("allocating subjectAltName");
  }
  for (const auto& name : names) {
    general_name_ptr gen = make_general_name(name);
    if (sk_GENERAL_NAME_push(sans.get(), gen.get()) == 0) {
      fail_pki("adding '" + name + "' to subjectAltName");
    }
    gen.release();
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    fail_pki("adding subjectAltName");
  }
}

void sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) == 0) {
    fail_pki("signing a certificate");
  }
}

x509_ptr make_ca_certificate(EVP_PKEY* ca_key) {
  x509_ptr ca = make_certificate(ca_key, "locomov local CA " + local_hostname(), 3650);
  if (X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get())) != 1) {
    fail_pki("setting CA issuer");
  }
  add_extension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  add_extension(ca.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
  sign(ca.get(), ca_key);
  return ca;
}

x509_ptr make_server_certificate(EVP_PKEY* key, X509* ca, EVP_PKEY* ca_key,
                                 const std::vector<std::string>& names) {
  // CN is capped at 64 characters; clients match on subjectAltName anyway.
  const std::string& first = names.front();
  x509_ptr cert = make_certificate(key, first.size() <= 64 ? first : "locomov server", 730);
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca)) != 1) {
    fail_pki("setting server certificate issuer");
  }
  add_extension(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE");
  // keyEncipherment because RSA key exchange (AES256-SHA) encrypts the premaster secret
  // to this key; strict clients check for it.
  add_extension(cert.get(), ca, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_extension(cert.get(), ca, NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), ca, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), ca, NID_authority_key_identifier, "keyid:always");
  add_subject_alt_names(cert.get(), names);
  sign(cert.get(), ca_key);
  return cert;
}

/// What `write_pem` puts into a BIO; `what` names it in an error.
template <class WritePem>
std::string pem_text(const std::string& what, WritePem write_pem) {
  bio_ptr mem{BIO_new(BIO_s_mem())};
  if (!mem || write_pem(mem.get()) != 1) {
    fail_pki("encoding " + what);
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(mem.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string key_pem(EVP_PKEY* key, const std::string& what) {
  return pem_text(what, [key](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

std::string certificate_pem(X509* cert, const std::string& what) {
  return pem_text(what, [cert](BIO* bio) { return PEM_write_bio_X509(bio, cert); });
}

/// Writes `pem` to `path` with `mode`, through a temporary file and rename() so that a
/// crash never leaves a truncated key behind.
void write_pem_file(const fs::path& path, mode_t mode, const std::string& pem) {
  const char* data = pem.data();
  const auto size = static_cast<long>(pem.size());

  std::string temp = path.string() + ".tmp.XXXXXX";
  // mkstemp creates the file 0600, so a key is never readable by others, even briefly.
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    fail_errno("creating a temporary file for " + path.string(), errno);
  }
  auto fail_with_cleanup = [&](const std::string& what) {
    const int err = errno;
    close(fd);
    unlink(temp.c_str());
    fail_errno(what + " " + temp, err);
  };
  if (fchmod(fd, mode) != 0) {
    fail_with_cleanup("setting the mode of");
  }
  for (long done = 0; done < size;) {
    const ssize_t n = write(fd, data + done, static_cast<size_t>(size - done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      fail_with_cleanup("writing");
    }
    done += n;
  }
  if (fsync(fd) != 0) {
    fail_with_cleanup("syncing");
  }
  if (close(fd) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    fail_errno("closing " + temp, err);
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    fail_errno("renaming " + temp + " to " + path.string(), err);
  }
}

void write_key(const fs::path& path, EVP_PKEY* key) {
  write_pem_file(path, 0600, key_pem(key, path.string()));
}

void write_certificate(const fs::path& path, X509* cert) {
  write_pem_file(path, 0644, certificate_pem(cert, path.string()));
}

void make_private_directory(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    return;
  }
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      fail_errno("creating " + dir.parent_path().string(), ec.value());
    }
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fail_errno("creating " + dir.string(), errno);
  }
}

/// Adds RFC 8737's id-pe-acmeIdentifier: critical, an OCTET STRING of `digest`.
void add_acme_identifier(X509* cert, const std::string& digest) {
  using object_ptr = std::unique_ptr<ASN1_OBJECT, openssl_deleter<ASN1_OBJECT_free>>;
  object_ptr oid{OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1)};
  octet_string_ptr inner{ASN1_OCTET_STRING_new()};
  const auto* bytes = reinterpret_cast<const unsigned char*>(digest.data());
  if (!oid || !inner ||
      ASN1_OCTET_STRING_set(inner.get(), bytes, static_cast<int>(digest.size())) != 1) {
    fail_pki("encoding acmeIdentifier");
  }
  // The extension's value is the DER of that OCTET STRING, wrapped once more.
  unsigned char* der = nullptr;
  const int der_size = i2d_ASN1_OCTET_STRING(inner.get(), &der);
  octet_string_ptr value{ASN1_OCTET_STRING_new()};
  const bool encoded =
      der_size > 0 && value && ASN1_OCTET_STRING_set(value.get(), der, der_size) == 1;
  OPENSSL_free(der);
  if (!encoded) {
    fail_pki("encoding acmeIdentifier");
  }
  extension_ptr ext{X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get())};
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail_pki("adding acmeIdentifier");
  }
}

}  // namespace

pem_pair make_acme_validation_certificate(const std::string& name, const std::string& digest) {
  ERR_clear_error();
  evp_pkey_ptr key{EVP_EC_gen("P-256")};
  if (!key) {
    fail_pki("generating a P-256 key");
  }
  x509_ptr cert = make_certificate(key.get(), name.size() <= 64 ? name : "acme validation", 7);
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    fail_pki("setting the issuer");
  }
  add_subject_alt_names(cert.get(), {name});
  add_acme_identifier(cert.get(), digest);
  sign(cert.get(), key.get());
  return {certificate_pem(cert.get(), "the validation certificate"),
          key_pem(key.get(), "the validation key")};
}

self_signed_paths ensure_self_signed(const std::filesystem::path& dir,
                                     const std::vector<std::string>& names) {
  if (names.empty()) {
    throw std::runtime_error("self-signed TLS files: no names for subjectAltName");
  }
  make_private_directory(dir);

  self_signed_paths paths{dir / "ca.crt", dir / "ca.key", dir / "server.crt", dir / "server.key"};
  std::error_code ec;
  if (fs::exists(paths.ca_cert, ec) && fs::exists(paths.ca_key, ec) && fs::exists(paths.cert, ec) &&
      fs::exists(paths.key, ec)) {
    return paths;
  }

  ERR_clear_error();
  // RSA for the CA too: SimpleLink firmware verifies RSA signatures, not all versions ECDSA.
  evp_pkey_ptr ca_key = make_rsa_key();
  x509_ptr ca = make_ca_certificate(ca_key.get());
  evp_pkey_ptr key = make_rsa_key();
  x509_ptr cert = make_server_certificate(key.get(), ca.get(), ca_key.get(), names);

  // An incomplete set is replaced as a whole. Write the server certificate last: until
  // it is in place the set stays incomplete, so a crash part-way means regeneration on the
  // next start rather than a mismatched pair.
  fs::remove(paths.cert, ec);
  write_key(paths.ca_key, ca_key.get());
  write_certificate(paths.ca_cert, ca.get());
  write_key(paths.key, key.get());
  write_certificate(paths.cert, cert.get());
  return paths;
}

}  // namespace locomov::net
