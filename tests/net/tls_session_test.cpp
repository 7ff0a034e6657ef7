#include "net/tls_session.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "tests/net/tls_test_support.hpp"
#include "tests/support/tls_cases.hpp"

namespace locomov::net {
namespace {

using state = tls_session::state;

using locomov::test::hello_h2;
using locomov::test::hello_h3;
using locomov::test::simplelink_ciphers;

/// Cipher suite id a ServerHello at the start of `out` picked, or -1.
int server_hello_suite(const std::string& out) {
  // record header (5), handshake header (4), version (2), random (32), session id length
  constexpr size_t sid_len_at = 5 + 4 + 2 + 32;
  if (out.size() <= sid_len_at || out[0] != 0x16 || out[5] != 0x02) {
    return -1;
  }
  const size_t suite_at = sid_len_at + 1 + static_cast<unsigned char>(out[sid_len_at]);
  if (out.size() < suite_at + 2) {
    return -1;
  }
  return static_cast<unsigned char>(out[suite_at]) << 8 |
         static_cast<unsigned char>(out[suite_at + 1]);
}

/// Extension types in the ServerHello at the start of `out`.
std::vector<int> server_hello_extensions(const std::string& out) {
  std::vector<int> types;
  if (server_hello_suite(out) < 0) {
    return types;
  }
  auto byte = [&](size_t at) { return static_cast<unsigned char>(out.at(at)); };
  const size_t sid_len_at = 5 + 4 + 2 + 32;
  size_t at = sid_len_at + 1 + byte(sid_len_at) + 2 + 1;  // session id, suite, compression
  const size_t end = at + 2 + (byte(at) << 8 | byte(at + 1));
  for (at += 2; at + 4 <= end; at += 4 + (byte(at + 2) << 8 | byte(at + 3))) {
    types.push_back(byte(at) << 8 | byte(at + 1));
  }
  return types;
}

class TlsSession : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new test::test_pki;
    ctx_ = new ssl_ctx_ptr{make_server_context(pki_->settings())};
  }
  static void TearDownTestSuite() {
    delete ctx_;
    delete pki_;
  }

  /// A server session on the shared default context.
  static tls_session make_server() { return tls_session{ctx_->get()}; }

  /// Handshakes a client with `opts` against a fresh server session.
  struct connection {
    test::client_ctx_ptr client_ctx;
    std::unique_ptr<test::tls_client> client;
    std::unique_ptr<tls_session> server;
    std::string server_plain;
  };
  static connection connect(const test::client_options& opts, SSL_SESSION* resume = nullptr) {
    connection conn;
    conn.client_ctx = test::make_client_context(opts);
    conn.client = std::make_unique<test::tls_client>(conn.client_ctx.get());
    conn.server = std::make_unique<tls_session>(ctx_->get());
    if (resume != nullptr) {
      SSL_set_session(conn.client->ssl(), resume);
    }
    test::pump(*conn.client, *conn.server, conn.server_plain);
    return conn;
  }

  static test::test_pki* pki_;
  static ssl_ctx_ptr* ctx_;
};

test::test_pki* TlsSession::pki_ = nullptr;
ssl_ctx_ptr* TlsSession::ctx_ = nullptr;

TEST_F(TlsSession, HandshakesOnTls13ByDefault) {
  connection conn = connect(test::client_options{});

  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_TRUE(conn.client->established());
  EXPECT_EQ(conn.server->version(), "TLSv1.3");
  EXPECT_EQ(conn.server->cipher(), "TLS_AES_256_GCM_SHA384");
  EXPECT_TRUE(conn.server->error().empty());
}

TEST_F(TlsSession, HandshakesOnTls12WithDefaultClientCiphers) {
  connection conn = connect(test::tls12_client());

  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_EQ(conn.server->version(), "TLSv1.2");
  EXPECT_EQ(conn.server->cipher(), "ECDHE-RSA-AES256-GCM-SHA384");
}

TEST_F(TlsSession, AcceptsAes256ShaOnTls12ByDefault) {
  connection conn = connect(test::tls12_client().offering("AES256-SHA"));

  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_EQ(conn.server->version(), "TLSv1.2");
  EXPECT_EQ(conn.server->cipher(), "AES256-SHA");
  X509* cert = SSL_get0_peer_certificate(conn.client->ssl());
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(cert)), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(cert)), 2048);
}

TEST_F(TlsSession, SimpleLinkProfileGetsP256Ecdhe) {
  connection conn = connect(test::tls12_client().offering(simplelink_ciphers).with_groups("P-256"));

  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_EQ(conn.server->cipher(), "ECDHE-RSA-AES256-SHA");
  EVP_PKEY* temp_key = nullptr;
  ASSERT_EQ(SSL_get_peer_tmp_key(conn.client->ssl(), &temp_key), 1);
  char group[64] = {};
  EXPECT_EQ(EVP_PKEY_get_group_name(temp_key, group, sizeof(group), nullptr), 1);
  EXPECT_STREQ(group, "prime256v1");
  EVP_PKEY_free(temp_key);
}

TEST_F(TlsSession, Tls13ClientOfferingOnlyP256GetsP256) {
  connection conn = connect(test::client_options{}.with_groups("P-256"));

  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_EQ(conn.server->version(), "TLSv1.3");
  EXPECT_EQ(SSL_get_negotiated_group(conn.client->ssl()), NID_X9_62_prime256v1);
}

TEST_F(TlsSession, SparseHelloWithoutGroupsGetsServerHello) {
  tls_session server = make_server();
  std::string plain;
  std::string out;

  const state result = server.receive(test::from_hex(hello_h2), plain, out);

  EXPECT_EQ(result, state::handshaking) << server.error();
  ASSERT_GT(out.size(), 5u);
  EXPECT_EQ(out[0], 0x16);
  EXPECT_EQ(out[5], 0x02);
  // Without supported_groups no ECDHE suite is possible; RSA key exchange remains.
  EXPECT_EQ(server_hello_suite(out), 0x0035);
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsSession, EcdheServerHelloCarriesPointFormatsWhenClientSentThem) {
  test::client_ctx_ptr client_ctx =
      test::make_client_context(test::tls12_client().offering("ECDHE-RSA-AES128-GCM-SHA256"));
  test::tls_client client{client_ctx.get()};
  tls_session server = make_server();
  std::string plain;
  std::string out;

  client.step();
  server.receive(client.take_output(), plain, out);

  EXPECT_EQ(server_hello_suite(out), 0xc02f);
  const std::vector<int> extensions = server_hello_extensions(out);
  EXPECT_NE(std::find(extensions.begin(), extensions.end(), 0x000b), extensions.end());
}

TEST_F(TlsSession, SparseHelloWithOnlyEcdheSuitesGetsServerHelloOrCleanFailure) {
  tls_session server = make_server();
  std::string plain;
  std::string out;

  const state result = server.receive(test::from_hex(hello_h3), plain, out);

  if (result == state::handshaking) {
    EXPECT_EQ(server_hello_suite(out), 0xc02f);
  } else {
    // OpenSSL 3.0 offers no way to assume secp256r1 for a client that names no groups.
    EXPECT_EQ(result, state::failed);
    EXPECT_EQ(server.error(), "no shared cipher");
    ASSERT_EQ(out.size(), 7u);
    EXPECT_EQ(out[0], 0x15);  // alert record
    EXPECT_EQ(out[6], 40);    // handshake_failure
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsSession, PlaintextJsonIsNotTls) {
  tls_session server = make_server();
  std::string plain;
  std::string out;

  EXPECT_EQ(server.receive(R"({"Id":1})", plain, out), state::failed);
  EXPECT_EQ(server.error(), "peer did not speak TLS");
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(plain.empty());
  EXPECT_EQ(server.receive("\x16\x03\x01", plain, out), state::failed);
}

TEST_F(TlsSession, PlaintextHttpIsNotTls) {
  tls_session server = make_server();
  std::string plain;
  std::string out;

  EXPECT_EQ(server.receive("GET / HTTP/1.1\r\n\r\n", plain, out), state::failed);
  EXPECT_EQ(server.error(), "peer did not speak TLS");
}

TEST_F(TlsSession, BadRecordVersionReportsOpenSslReason) {
  tls_session server = make_server();
  std::string plain;
  std::string out;

  EXPECT_EQ(server.receive(test::from_hex("1609090005010000010000"), plain, out), state::failed);
  EXPECT_EQ(server.error(), "wrong version number");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsSession, ApplicationDataFlowsBothWays) {
  connection conn = connect(test::client_options{});
  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  std::string out;

  conn.client->write(R"({"Id":1,"E":42})");
  conn.server->receive(conn.client->take_output(), conn.server_plain, out);
  conn.server->send("Thank you.", out);
  conn.client->feed(out);
  conn.client->step();

  EXPECT_EQ(conn.server_plain, R"({"Id":1,"E":42})");
  EXPECT_EQ(conn.client->received, "Thank you.");
  EXPECT_EQ(conn.server->current(), state::established);
}

TEST_F(TlsSession, HalfARecordIsSeenAsMidRecord) {
  connection conn = connect(test::client_options{});
  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_FALSE(conn.server->mid_record());
  std::string out;
  conn.client->write(R"({"Id":1})");
  const std::string record = conn.client->take_output();

  conn.server->receive(record.substr(0, 3), conn.server_plain, out);
  EXPECT_TRUE(conn.server->mid_record());
  conn.server->receive(record.substr(3, 10), conn.server_plain, out);
  EXPECT_TRUE(conn.server->mid_record());
  conn.server->receive(record.substr(13), conn.server_plain, out);

  EXPECT_FALSE(conn.server->mid_record());
  EXPECT_EQ(conn.server_plain, R"({"Id":1})");
}

TEST_F(TlsSession, LargeApplicationDataSpansRecords) {
  connection conn = connect(test::client_options{});
  const std::string big(100 * 1000, 'x');
  std::string out;

  conn.client->write(big);
  conn.server->receive(conn.client->take_output(), conn.server_plain, out);
  conn.server->send(big, out);
  conn.client->feed(out);
  conn.client->step();

  EXPECT_EQ(conn.server_plain, big);
  EXPECT_EQ(conn.client->received, big);
}

TEST_F(TlsSession, ApplicationDataInSameFeedAsClientFinished) {
  test::client_ctx_ptr client_ctx = test::make_client_context(test::client_options{});
  test::tls_client client{client_ctx.get()};
  tls_session server = make_server();
  std::string plain;
  std::string out;

  client.step();
  server.receive(client.take_output(), plain, out);
  client.feed(out);
  client.step();
  ASSERT_TRUE(client.established());
  client.write("first packet");
  out.clear();
  const state result = server.receive(client.take_output(), plain, out);

  EXPECT_EQ(result, state::established) << server.error();
  EXPECT_EQ(plain, "first packet");
  EXPECT_FALSE(out.empty()) << "TLS 1.3 session tickets expected";
}

TEST_F(TlsSession, ApplicationDataInSameFeedAsResumedTls12Finished) {
  connection first = connect(test::tls12_client().offering("AES256-SHA"));
  test::ssl_session_ptr session{SSL_get1_session(first.client->ssl())};
  test::client_ctx_ptr client_ctx =
      test::make_client_context(test::tls12_client().offering("AES256-SHA"));
  test::tls_client client{client_ctx.get()};
  SSL_set_session(client.ssl(), session.get());
  tls_session server = make_server();
  std::string plain;
  std::string out;

  client.step();
  server.receive(client.take_output(), plain, out);
  client.feed(out);
  client.step();
  ASSERT_TRUE(client.established());
  ASSERT_EQ(SSL_session_reused(client.ssl()), 1);
  client.write("first packet");
  const state result = server.receive(client.take_output(), plain, out);

  EXPECT_EQ(result, state::established) << server.error();
  EXPECT_EQ(plain, "first packet");
}

TEST_F(TlsSession, BytesFedOneAtATime) {
  for (const int max_version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    test::client_ctx_ptr client_ctx =
        test::make_client_context(test::client_options{}.up_to(max_version));
    test::tls_client client{client_ctx.get()};
    tls_session server = make_server();
    std::string plain;

    test::pump(client, server, plain, 1);
    ASSERT_EQ(server.current(), state::established) << server.error();
    client.write("one byte at a time");
    test::pump(client, server, plain, 1);

    EXPECT_EQ(plain, "one byte at a time");
    EXPECT_TRUE(client.established());
  }
}

TEST_F(TlsSession, ResumesTls12SessionById) {
  const test::client_options opts = test::tls12_client().with_options(SSL_OP_NO_TICKET);
  connection first = connect(opts);
  ASSERT_EQ(first.server->current(), state::established) << first.server->error();
  test::ssl_session_ptr session{SSL_get1_session(first.client->ssl())};
  ASSERT_GT(SSL_SESSION_get_master_key(session.get(), nullptr, 0), 0u);
  unsigned id_len = 0;
  SSL_SESSION_get_id(session.get(), &id_len);
  ASSERT_GT(id_len, 0u);

  connection second = connect(opts, session.get());

  EXPECT_EQ(second.server->current(), state::established) << second.server->error();
  EXPECT_EQ(SSL_session_reused(second.client->ssl()), 1);
}

TEST_F(TlsSession, ResumesTls12SessionWithTicket) {
  connection first = connect(test::tls12_client().offering("AES256-SHA"));
  test::ssl_session_ptr session{SSL_get1_session(first.client->ssl())};
  ASSERT_EQ(SSL_SESSION_has_ticket(session.get()), 1);

  connection second = connect(test::tls12_client().offering("AES256-SHA"), session.get());

  EXPECT_EQ(second.server->current(), state::established) << second.server->error();
  EXPECT_EQ(SSL_session_reused(second.client->ssl()), 1);
  EXPECT_EQ(second.server->cipher(), "AES256-SHA");
}

TEST_F(TlsSession, ResumesTls13SessionWithTicket) {
  connection first = connect(test::client_options{});
  test::ssl_session_ptr session{SSL_get1_session(first.client->ssl())};
  ASSERT_EQ(SSL_SESSION_is_resumable(session.get()), 1);

  connection second = connect(test::client_options{}, session.get());

  EXPECT_EQ(second.server->current(), state::established) << second.server->error();
  EXPECT_EQ(SSL_session_reused(second.client->ssl()), 1);
  EXPECT_EQ(second.server->version(), "TLSv1.3");
}

TEST_F(TlsSession, PeerCloseNotifyClosesAndShutdownAnswers) {
  connection conn = connect(test::client_options{});
  std::string out;

  SSL_shutdown(conn.client->ssl());
  EXPECT_EQ(conn.server->receive(conn.client->take_output(), conn.server_plain, out),
            state::closed);
  out.clear();
  conn.server->shutdown(out);
  conn.client->feed(out);
  conn.client->step();

  EXPECT_FALSE(out.empty());
  EXPECT_TRUE(conn.client->peer_closed());
}

TEST_F(TlsSession, SendBeforeHandshakeIsAnError) {
  tls_session server = make_server();
  std::string out;

  EXPECT_THROW(server.send("too early", out), std::logic_error);
}

TEST_F(TlsSession, FailedHandshakeSendsAlertAndLeavesNothingToDo) {
  // A client offering only TLS 1.2 suites the server's list lacks.
  connection conn = connect(test::tls12_client().offering("CAMELLIA256-SHA"));
  std::string plain;
  std::string out;

  EXPECT_EQ(conn.server->current(), state::failed);
  EXPECT_EQ(conn.server->error(), "no shared cipher");
  EXPECT_TRUE(conn.client->failed());
  EXPECT_EQ(conn.server->receive("\x16\x03\x03", plain, out), state::failed);
  conn.server->send("ignored", out);
  conn.server->shutdown(out);
  EXPECT_TRUE(out.empty());
}

// The operator's view of a fleet that cannot connect: what it offered, in
// OpenSSL and IANA names, beside what the server allows.
TEST_F(TlsSession, NoSharedCipherNamesWhatWasOfferedAndWhatIsAllowed) {
  connection conn = connect(test::tls12_client().offering("CAMELLIA256-SHA"));
  ASSERT_EQ(conn.server->error(), "no shared cipher");

  const auto& offer = conn.server->offer();
  EXPECT_NE(offer.find("offered_ciphers=CAMELLIA256-SHA/TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
            std::string::npos)
      << offer;
  EXPECT_NE(offer.find(" offered_groups="), std::string::npos) << offer;
  EXPECT_NE(offer.find("AES256-SHA/TLS_RSA_WITH_AES_256_CBC_SHA"), std::string::npos) << offer;
  EXPECT_NE(offer.find(" allowed_groups=X25519:P-256:P-384"), std::string::npos) << offer;
  EXPECT_EQ(offer.find('\n'), std::string::npos) << offer;
}

TEST_F(TlsSession, SuccessfulHandshakeHasNoOfferToReport) {
  connection conn = connect(test::tls12_client());
  ASSERT_EQ(conn.server->current(), state::established) << conn.server->error();
  EXPECT_TRUE(conn.server->offer().empty());
}

TEST_F(TlsSession, MovesBetweenThreadsWithoutLosingErrors) {
  test::client_ctx_ptr client_ctx = test::make_client_context(test::client_options{});
  test::tls_client client{client_ctx.get()};
  tls_session server = make_server();
  std::string plain;
  std::string out;
  auto on_other_thread = [&](std::string bytes) {
    std::thread{[&] { server.receive(bytes, plain, out); }}.join();
  };

  client.step();
  on_other_thread(client.take_output());
  client.feed(out);
  client.step();
  on_other_thread(client.take_output());
  ASSERT_EQ(server.current(), state::established) << server.error();
  // A record with a bad MAC, decrypted on yet another thread.
  client.write("payload");
  std::string record = client.take_output();
  record.back() ^= 0x01;
  on_other_thread(record);

  EXPECT_EQ(server.current(), state::failed);
  EXPECT_EQ(server.error(), "decryption failed or bad record mac");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace locomov::net
