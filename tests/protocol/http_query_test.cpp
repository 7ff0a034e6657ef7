// The app's HTTP query on the confirmation port: request reading, routing and
// responses, over every split of the byte stream.

#include "protocol/http_query.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace locomov::protocol {
namespace {

std::vector<http_request> read_all(const std::string& stream) {
  http_reader reader;
  std::vector<http_request> out;
  reader.feed(stream, out);
  return out;
}

TEST(HttpReader, RoutesConfoPathToQuery) {
  auto out = read_all("GET /confo/meter-7/home HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(out.size(), 1U);
  ASSERT_TRUE(out[0].query);
  EXPECT_EQ(out[0].query->device_name, "meter-7");
  EXPECT_EQ(out[0].query->ssid, "home");
  EXPECT_TRUE(out[0].keep_alive);
  EXPECT_FALSE(out[0].head);
}

TEST(HttpReader, RoutesApiConfoPathToQuery) {
  auto out = read_all("GET /api/confo/m/s HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(out.size(), 1U);
  ASSERT_TRUE(out[0].query);
  EXPECT_EQ(out[0].query->device_name, "m");
  EXPECT_EQ(out[0].query->ssid, "s");
}

TEST(HttpReader, PercentDecodesSegmentsByteExact) {
  auto out = read_all(
      "GET /confo/Ravi%E2%80%99s%20meter/x%27%3B%20DROP%20TABLE%20pub%3B--+1 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(out.size(), 1U);
  ASSERT_TRUE(out[0].query);
  EXPECT_EQ(out[0].query->device_name, "Ravi\xE2\x80\x99s meter");
  EXPECT_EQ(out[0].query->ssid, "x'; DROP TABLE pub;--+1");
}

TEST(HttpReader, IgnoresQueryString) {
  auto out = read_all("GET /confo/a/b?x=1 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(out.size(), 1U);
  ASSERT_TRUE(out[0].query);
  EXPECT_EQ(out[0].query->ssid, "b");
}

TEST(HttpReader, AnswersUnknownPathsNotFound) {
  for (const char* path : {"/", "/confo", "/confo/a", "/confo/a/b/c", "/confo//b", "/other/a/b",
                           "/api/other/a/b"}) {
    auto out = read_all(std::string("GET ") + path + " HTTP/1.1\r\n\r\n");
    ASSERT_EQ(out.size(), 1U) << path;
    EXPECT_FALSE(out[0].query) << path;
    EXPECT_EQ(out[0].response.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0U) << path;
    EXPECT_NE(out[0].response.find("\r\n\r\nNot found"), std::string::npos) << path;
  }
}

TEST(HttpReader, RefusesOtherMethodsWithAllow) {
  auto out = read_all("POST /confo/a/b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_EQ(out.size(), 1U);
  EXPECT_FALSE(out[0].query);
  EXPECT_EQ(out[0].response.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0U);
  EXPECT_NE(out[0].response.find("Allow: GET, HEAD\r\n"), std::string::npos);
}

TEST(HttpReader, RefusesBadEscapesAndNul) {
  for (const char* path : {"/confo/a%2/b", "/confo/a%zz/b", "/confo/a%00/b"}) {
    auto out = read_all(std::string("GET ") + path + " HTTP/1.1\r\n\r\n");
    ASSERT_EQ(out.size(), 1U) << path;
    EXPECT_FALSE(out[0].query) << path;
    EXPECT_EQ(out[0].response.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0U) << path;
  }
}

// PostgreSQL's UTF8 text refuses such bytes, so no stored name holds them:
// the request is bad, not a reason to ask the database.
TEST(HttpReader, RefusesSegmentsThatAreNotUtf8) {
  for (const char* path : {"/api/confo/%ff/x", "/confo/a/%C0%AF", "/confo/%ED%A0%80/b",
                           "/confo/%F4%90%80%80/b", "/confo/a/%E2%82"}) {
    auto out = read_all(std::string("GET ") + path + " HTTP/1.1\r\n\r\n");
    ASSERT_EQ(out.size(), 1U) << path;
    EXPECT_FALSE(out[0].query) << path;
    EXPECT_EQ(out[0].response.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0U) << path;
  }
  auto ok = read_all("GET /confo/Ravi%E2%80%99s/%F0%9F%8F%A0 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(ok.size(), 1U);
  ASSERT_TRUE(ok[0].query);
  EXPECT_EQ(ok[0].query->device_name, "Ravi\xE2\x80\x99s");
  EXPECT_EQ(ok[0].query->ssid, "\xF0\x9F\x8F\xA0");
}

TEST(HttpReader, ReadsPipelinedRequestsInOrder) {
  auto out = read_all(
      "GET /confo/a/1 HTTP/1.1\r\n\r\nHEAD /confo/a/2 HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n");
  ASSERT_EQ(out.size(), 3U);
  EXPECT_EQ(out[0].query->ssid, "1");
  EXPECT_TRUE(out[1].head);
  EXPECT_EQ(out[1].query->ssid, "2");
  EXPECT_FALSE(out[2].query);
}

TEST(HttpReader, KnowsWhenItIsInsideARequest) {
  http_reader reader;
  std::vector<http_request> out;
  EXPECT_FALSE(reader.mid_request());

  reader.feed("GET /confo/m/s HTTP/1.1\r\nHo", out);
  EXPECT_TRUE(reader.mid_request());
  reader.feed("st: x\r\n\r\n", out);
  EXPECT_FALSE(reader.mid_request());
  EXPECT_EQ(out.size(), 1U);
}

TEST(HttpReader, StopsAfterRequestWithoutKeepAlive) {
  auto out = read_all(
      "GET /confo/a/1 HTTP/1.1\r\nConnection: close\r\n\r\nGET /confo/a/2 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(out.size(), 1U);
  EXPECT_FALSE(out[0].keep_alive);
  auto old = read_all("GET /confo/a/1 HTTP/1.0\r\n\r\n");
  ASSERT_EQ(old.size(), 1U);
  EXPECT_FALSE(old[0].keep_alive);
}

TEST(HttpReader, FindsSameRequestsForEverySplitPoint) {
  const std::string stream =
      "GET /api/confo/d%20n/s HTTP/1.1\r\nHost: locomov\r\nUser-Agent: app\r\n\r\n"
      "GET /confo/x/y HTTP/1.1\r\n\r\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    http_reader reader;
    std::vector<http_request> out;
    reader.feed(stream.substr(0, cut), out);
    reader.feed(stream.substr(cut), out);
    ASSERT_EQ(out.size(), 2U) << cut;
    EXPECT_EQ(out[0].query->device_name, "d n") << cut;
    EXPECT_EQ(out[1].query->ssid, "y") << cut;
  }
}

TEST(HttpReader, AnswersMalformedRequestWithBadRequestAndStops) {
  http_reader reader;
  std::vector<http_request> out;
  reader.feed("GET /confo/a/b HTTP/1.1\r\nBad Header Line\r\n\r\n", out);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_TRUE(reader.failed());
  EXPECT_FALSE(reader.error().empty());
  EXPECT_FALSE(out[0].keep_alive);
  EXPECT_EQ(out[0].response.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0U);
  reader.feed("GET /confo/a/b HTTP/1.1\r\n\r\n", out);
  EXPECT_EQ(out.size(), 1U);
}

TEST(HttpReader, RefusesOverlongTarget) {
  http_reader reader;
  std::vector<http_request> out;
  reader.feed("GET /confo/" + std::string(9000, 'a') + "/b HTTP/1.1\r\n\r\n", out);
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].response.rfind("HTTP/1.1 414 URI Too Long\r\n", 0), 0U);
}

TEST(QueryResponse, GivesHashAsDecimalText) {
  EXPECT_EQ(query_response(-12345, false, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 6\r\n\r\n-12345");
}

TEST(QueryResponse, GivesNotFoundAndHonoursHeadAndClose) {
  EXPECT_EQ(query_response(std::nullopt, true, false),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 9\r\nConnection: close\r\n\r\n");
}

TEST(LooksLikeHttp, TellsRequestLineFromJson) {
  EXPECT_TRUE(looks_like_http("GET / HTTP/1.1"));
  EXPECT_TRUE(looks_like_http("HEAD"));
  EXPECT_FALSE(looks_like_http("{\"deviceName\":1}"));
  EXPECT_FALSE(looks_like_http(" {"));
  EXPECT_FALSE(looks_like_http(""));
}

}  // namespace
}  // namespace locomov::protocol
