#include "acme/acme_client.hpp"

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

namespace locomov::acme {
namespace {

using json = nlohmann::json;

std::string base64url(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                                static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  for (auto& c : out) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  out.erase(std::find(out.begin(), out.end(), '='), out.end());
  return out;
}

std::string base64url(const std::string& text) {
  return base64url(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  char text[256] = "unknown OpenSSL error";
  if (e != 0) {
    ERR_error_string_n(e, text, sizeof text);
  }
  ERR_clear_error();
  return text;
}

[[noreturn]] void fail(const std::string& what) {
  throw acme_error({}, what + ": " + openssl_reason(), 0);
}

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

std::string pem_of(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

/// The 32 big-endian bytes of a P-256 coordinate or signature half.
std::string fixed32(const BIGNUM* bn) {
  std::string out(32, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), 32);
  return out;
}

/// Lower-case header names to their values; Link may come several times.
using header_map = std::multimap<std::string, std::string>;

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

int on_progress(void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancelled)->load() ? 1 : 0;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* out) {
  std::string line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of("\r\n \t") + 1);
    static_cast<header_map*>(out)->emplace(name, value);
  }
  return size * n;
}

std::string header(const header_map& h, const std::string& name) {
  auto i = h.find(name);
  return i == h.end() ? std::string() : i->second;
}

std::chrono::seconds retry_after_of(const header_map& h) {
  const auto v = header(h, "retry-after");
  if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0]))) {
    return std::chrono::seconds(0);
  }
  return std::chrono::seconds(std::stol(v));
}

/// The URLs of `Link: <url>;rel="alternate"` headers.
std::vector<std::string> alternate_links(const header_map& h) {
  std::vector<std::string> out;
  auto [from, to] = h.equal_range("link");
  for (auto i = from; i != to; ++i) {
    const auto& v = i->second;
    if (v.find("rel=\"alternate\"") == std::string::npos) {
      continue;
    }
    const auto open = v.find('<');
    const auto close = v.find('>', open);
    if (open != std::string::npos && close != std::string::npos) {
      out.push_back(v.substr(open + 1, close - open - 1));
    }
  }
  return out;
}

}  // namespace

acme_error::acme_error(std::string type, const std::string& detail, long status,
                       std::chrono::seconds retry_after)
    : std::runtime_error(type.empty() ? detail : type + ": " + detail),
      type_(std::move(type)),
      status_(status),
      retry_after_(retry_after) {}

std::string make_account_key() {
  pkey_ptr k(EVP_EC_gen("P-256"));
  if (!k) {
    fail("cannot make an ECDSA P-256 key");
  }
  return pem_of(k.get());
}

struct client::key {
  pkey_ptr pkey;
  json jwk;
  std::string thumbprint;
};

struct client::response {
  long status = 0;
  header_map headers;
  std::string body;
  json doc() const {
    auto d = json::parse(body, nullptr, false);
    return d.is_discarded() ? json::object() : d;
  }
};

client::client(client_settings settings) : settings_(std::move(settings)), key_(new key) {
  BIO* bio = BIO_new_mem_buf(settings_.account_key_pem.data(),
                             static_cast<int>(settings_.account_key_pem.size()));
  key_->pkey.reset(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  if (!key_->pkey || EVP_PKEY_get_base_id(key_->pkey.get()) != EVP_PKEY_EC) {
    throw acme_error({}, "the account key is not an ECDSA P-256 key in PEM", 0);
  }
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  if (EVP_PKEY_get_bn_param(key_->pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
      EVP_PKEY_get_bn_param(key_->pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
    BN_free(x);
    fail("cannot read the account key's public point");
  }
  // RFC 7638: the thumbprint hashes the required members in this order.
  const std::string canonical = R"({"crv":"P-256","kty":"EC","x":")" + base64url(fixed32(x)) +
                                R"(","y":")" + base64url(fixed32(y)) + R"("})";
  BN_free(x);
  BN_free(y);
  key_->jwk = json::parse(canonical);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(canonical.data(), canonical.size(), digest, &n, EVP_sha256(), nullptr);
  key_->thumbprint = base64url(digest, n);
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

client::~client() = default;

std::string client::key_authorization(const std::string& token) const {
  return token + "." + key_->thumbprint;
}

void client::throw_if_cancelled() const {
  if (settings_.cancelled && settings_.cancelled->load()) {
    throw acme_error({}, "abandoned: locomov is stopping", 0);
  }
}

client::response client::perform(void* handle, const std::string& url) {
  auto* curl = static_cast<CURL*>(handle);
  throw_if_cancelled();
  response r;
  if (settings_.cancelled) {
    // libcurl calls this about once a second even while it waits to connect.
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, settings_.cancelled.get());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "locomov-acme/0.1");
  if (!settings_.ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_file.c_str());
  }
  const auto rc = curl_easy_perform(curl);
  throw_if_cancelled();
  if (rc != CURLE_OK) {
    throw acme_error({}, url + ": " + curl_easy_strerror(rc), 0);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  if (auto nonce = header(r.headers, "replay-nonce"); !nonce.empty()) {
    nonce_ = nonce;
  }
  return r;
}

client::response client::get(const std::string& url, bool head) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (head) {
    curl_easy_setopt(curl.get(), CURLOPT_NOBODY, 1L);
  }
  return perform(curl.get(), url);
}

void client::load_directory() {
  if (!new_nonce_url_.empty()) {
    return;
  }
  const auto r = get(settings_.directory_url);
  const auto d = r.doc();
  if (r.status != 200 || !d.contains("newNonce") || !d.contains("newAccount") ||
      !d.contains("newOrder")) {
    throw acme_error({}, settings_.directory_url + " is not an ACME directory (HTTP " +
                             std::to_string(r.status) + ")",
                     r.status);
  }
  new_nonce_url_ = d["newNonce"];
  new_account_url_ = d["newAccount"];
  new_order_url_ = d["newOrder"];
}

std::string client::fresh_nonce() {
  if (nonce_.empty()) {
    get(new_nonce_url_, true);
  }
  if (nonce_.empty()) {
    throw acme_error({}, "the CA gave no nonce", 0);
  }
  return std::exchange(nonce_, std::string());
}

client::response client::post(const std::string& url, const std::string& payload) {
  load_directory();
  for (int attempt = 0;; ++attempt) {
    json protected_header{{"alg", "ES256"}, {"nonce", fresh_nonce()}, {"url", url}};
    if (account_url_.empty()) {
      protected_header["jwk"] = key_->jwk;
    } else {
      protected_header["kid"] = account_url_;
    }
    const auto p64 = base64url(protected_header.dump());
    const auto b64 = base64url(payload);
    const std::string signing_input = p64 + "." + b64;

    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::size_t der_size = 0;
    if (EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key_->pkey.get()) != 1 ||
        EVP_DigestSign(md.get(), nullptr, &der_size,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
      fail("cannot sign an ACME request");
    }
    std::string der(der_size, '\0');
    if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &der_size,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) != 1) {
      fail("cannot sign an ACME request");
    }
    // JWS wants r || s, OpenSSL gives an ASN.1 sequence of the two.
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_size));
    if (sig == nullptr) {
      fail("cannot read an ECDSA signature");
    }
    const std::string raw = fixed32(ECDSA_SIG_get0_r(sig)) + fixed32(ECDSA_SIG_get0_s(sig));
    ECDSA_SIG_free(sig);
    const json body{{"protected", p64}, {"payload", b64}, {"signature", base64url(raw)}};
    const auto text = body.dump();

    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(
        curl_slist_append(nullptr, "Content-Type: application/jose+json"), curl_slist_free_all);
    curl_slist_append(headers.get(), "Accept: application/pem-certificate-chain, application/json");
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, text.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(text.size()));
    const auto r = perform(curl.get(), url);
    if (r.status < 400) {
      return r;
    }
    const auto problem = r.doc();
    const std::string type = problem.value("type", "");
    if (type == "urn:ietf:params:acme:error:badNonce" && attempt < settings_.nonce_retries) {
      ++bad_nonces_;
      continue;  // the answer carried a fresh nonce
    }
    throw acme_error(type, problem.value("detail", "HTTP " + std::to_string(r.status)),
                     r.status, retry_after_of(r.headers));
  }
}

void client::register_account() {
  json payload{{"termsOfServiceAgreed", true}};
  if (!settings_.email.empty()) {
    payload["contact"] = json::array({"mailto:" + settings_.email});
  }
  account_url_.clear();
  load_directory();
  const auto r = post(new_account_url_, payload.dump());
  account_url_ = header(r.headers, "location");
  if (account_url_.empty()) {
    throw acme_error({}, "the CA answered the account without its URL", r.status);
  }
}

client::response client::poll(const std::string& url, const char* until_not) {
  const auto limit = std::chrono::steady_clock::now() + settings_.poll_limit;
  for (;;) {
    auto r = post(url, "");
    const auto status = r.doc().value("status", "");
    if (status != until_not && status != "pending" && status != "processing") {
      return r;
    }
    if (std::chrono::steady_clock::now() >= limit) {
      throw acme_error({}, url + " still " + status + " after " +
                               std::to_string(settings_.poll_limit.count()) + " s",
                       r.status);
    }
    const auto wait = retry_after_of(r.headers);
    const auto until = std::chrono::steady_clock::now() +
                       (wait.count() > 0 ? std::chrono::milliseconds(wait)
                                         : std::chrono::milliseconds(500));
    while (std::chrono::steady_clock::now() < until) {
      throw_if_cancelled();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

namespace {

/// A CSR for `names` signed by a fresh key; returns the DER and the key.
std::pair<std::string, std::string> make_csr(const std::vector<std::string>& names, bool rsa) {
  pkey_ptr k(rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  if (!k) {
    fail("cannot make the certificate's key");
  }
  std::unique_ptr<X509_REQ, void (*)(X509_REQ*)> req(X509_REQ_new(), X509_REQ_free);
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(names.front().c_str()), -1,
                             -1, 0);
  std::string sans;
  for (const auto& n : names) {
    sans += (sans.empty() ? "DNS:" : ",DNS:") + n;
  }
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, sans.c_str());
  sk_X509_EXTENSION_push(exts, ext);
  X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_set_pubkey(req.get(), k.get());
  if (X509_REQ_sign(req.get(), k.get(), EVP_sha256()) <= 0) {
    fail("cannot sign the CSR");
  }
  const int size = i2d_X509_REQ(req.get(), nullptr);
  std::string der(static_cast<std::size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &out);
  return {der, pem_of(k.get())};
}

}  // namespace

issued client::order(const std::vector<std::string>& names,
                     const challenge_responder& responder, bool rsa_key) {
  if (account_url_.empty()) {
    register_account();
  }
  json identifiers = json::array();
  for (const auto& n : names) {
    identifiers.push_back({{"type", "dns"}, {"value", n}});
  }
  const auto created = post(new_order_url_, json{{"identifiers", identifiers}}.dump());
  const auto order_url = header(created.headers, "location");
  const auto order_doc = created.doc();
  for (const auto& authz_url : order_doc.value("authorizations", json::array())) {
    const auto authz = post(authz_url, "").doc();
    if (authz.value("status", "") == "valid") {
      continue;  // reused from an earlier order
    }
    const std::string name = authz["identifier"].value("value", "?");
    json challenge;
    for (const auto& c : authz.value("challenges", json::array())) {
      if (c.value("type", "") == responder.type) {
        challenge = c;
      }
    }
    if (challenge.is_null()) {
      throw acme_error({}, "the CA offers no " + responder.type + " challenge for " + name, 0);
    }
    const std::string token = challenge.value("token", "");
    responder.answer(name, token, key_authorization(token));
    post(challenge.value("url", ""), "{}");
    const auto done = poll(authz_url, "pending").doc();
    responder.answer(name, token, "");
    if (done.value("status", "") != "valid") {
      std::string type;
      std::string detail = "authorization " + done.value("status", "?");
      for (const auto& c : done.value("challenges", json::array())) {
        if (c.contains("error")) {
          type = c["error"].value("type", "");
          detail = c["error"].value("detail", detail);
        }
      }
      throw acme_error(type, detail, 0);
    }
  }
  auto [csr, key_pem] = make_csr(names, rsa_key);
  post(order_doc["finalize"], json{{"csr", base64url(csr)}}.dump());
  const auto final_order = poll(order_url, "ready").doc();
  if (final_order.value("status", "") != "valid") {
    throw acme_error({}, "the order ended " + final_order.value("status", "?"), 0);
  }
  const auto cert = post(final_order["certificate"], "");
  issued result{cert.body, key_pem, {}};
  for (const auto& alternate : alternate_links(cert.headers)) {
    result.alternate_chains_pem.push_back(post(alternate, "").body);
  }
  return result;
}

}  // namespace locomov::acme
