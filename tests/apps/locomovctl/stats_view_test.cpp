// What `locomovctl stats` makes of /stats documents: parsing (histograms
// included, in the shape the daemon will write them), rates between two
// polls, quantiles as Prometheus estimates them, and the rendered view.

#include "apps/locomovctl/stats_view.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace locomov::ctl {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr double inf = std::numeric_limits<double>::infinity();

// Two polls two seconds apart of a daemon with every section's series.
constexpr const char* first_poll = R"({"metrics":[
 {"name":"locomov_actors_alive","labels":{"kind":"connection"},"type":"gauge","value":12},
 {"name":"locomov_actors_alive","labels":{"kind":"pub"},"type":"gauge","value":5},
 {"name":"locomov_actor_messages_total","labels":{"kind":"connection"},"type":"counter",
  "value":1000},
 {"name":"locomov_actor_messages_total","labels":{"kind":"pub"},"type":"counter","value":100},
 {"name":"locomov_actor_mailbox_depth","labels":{"kind":"connection"},"type":"gauge","value":2},
 {"name":"locomov_actor_mailbox_depth","labels":{"kind":"pub"},"type":"gauge","value":0},
 {"name":"locomov_actor_mailbox_depth_peak","labels":{"kind":"connection"},"type":"gauge",
  "value":9},
 {"name":"locomov_actor_mailbox_depth_peak","labels":{"kind":"pub"},"type":"gauge","value":4},
 {"name":"locomov_actor_message_seconds","labels":{"kind":"pub"},"type":"histogram",
  "count":100,"sum":0.01,
  "buckets":[{"le":0.0001,"count":60},{"le":0.001,"count":100},{"le":"+Inf","count":100}]},
 {"name":"locomov_connections_open","labels":{},"type":"gauge","value":12},
 {"name":"locomov_connections_accepted_total","labels":{"listener":"confo"},"type":"counter",
  "value":3},
 {"name":"locomov_connections_accepted_total","labels":{"listener":"packet"},"type":"counter",
  "value":40},
 {"name":"locomov_connections_refused_total",
  "labels":{"listener":"packet","reason":"overall_limit"},"type":"counter","value":0},
 {"name":"locomov_connections_refused_total",
  "labels":{"listener":"packet","reason":"per_address_limit"},"type":"counter","value":1},
 {"name":"locomov_writer_packets_total","labels":{"outcome":"committed"},"type":"counter",
  "value":500},
 {"name":"locomov_writer_packets_total","labels":{"outcome":"duplicate"},"type":"counter",
  "value":2},
 {"name":"locomov_writer_batch_rows","labels":{},"type":"histogram","count":10,"sum":500,
  "buckets":[{"le":1,"count":0},{"le":10,"count":0},{"le":100,"count":10},
             {"le":"+Inf","count":10}]},
 {"name":"locomov_writer_commit_seconds","labels":{},"type":"histogram","count":10,"sum":0.05,
  "buckets":[{"le":0.001,"count":0},{"le":0.01,"count":10},{"le":"+Inf","count":10}]},
 {"name":"locomov_writer_errors_total","labels":{},"type":"counter","value":0},
 {"name":"locomov_spool_packets","labels":{},"type":"gauge","value":0},
 {"name":"locomov_spool_bytes","labels":{},"type":"gauge","value":0},
 {"name":"process_resident_memory_bytes","labels":{},"type":"gauge","value":52428800},
 {"name":"process_open_fds","labels":{},"type":"gauge","value":40},
 {"name":"locomov_open_files_limit","labels":{},"type":"gauge","value":1024},
 {"name":"locomov_uptime_seconds","labels":{},"type":"gauge","value":3725}
]})";

constexpr const char* second_poll = R"({"metrics":[
 {"name":"locomov_actors_alive","labels":{"kind":"connection"},"type":"gauge","value":12},
 {"name":"locomov_actors_alive","labels":{"kind":"pub"},"type":"gauge","value":5},
 {"name":"locomov_actor_messages_total","labels":{"kind":"connection"},"type":"counter",
  "value":1000},
 {"name":"locomov_actor_messages_total","labels":{"kind":"pub"},"type":"counter","value":300},
 {"name":"locomov_actor_mailbox_depth","labels":{"kind":"connection"},"type":"gauge","value":2},
 {"name":"locomov_actor_mailbox_depth","labels":{"kind":"pub"},"type":"gauge","value":0},
 {"name":"locomov_actor_mailbox_depth_peak","labels":{"kind":"connection"},"type":"gauge",
  "value":9},
 {"name":"locomov_actor_mailbox_depth_peak","labels":{"kind":"pub"},"type":"gauge","value":4},
 {"name":"locomov_actor_message_seconds","labels":{"kind":"pub"},"type":"histogram",
  "count":300,"sum":0.03,
  "buckets":[{"le":0.0001,"count":160},{"le":0.001,"count":300},{"le":"+Inf","count":300}]},
 {"name":"locomov_connections_open","labels":{},"type":"gauge","value":14},
 {"name":"locomov_connections_accepted_total","labels":{"listener":"confo"},"type":"counter",
  "value":3},
 {"name":"locomov_connections_accepted_total","labels":{"listener":"packet"},"type":"counter",
  "value":60},
 {"name":"locomov_connections_refused_total",
  "labels":{"listener":"packet","reason":"overall_limit"},"type":"counter","value":0},
 {"name":"locomov_connections_refused_total",
  "labels":{"listener":"packet","reason":"per_address_limit"},"type":"counter","value":5},
 {"name":"locomov_writer_packets_total","labels":{"outcome":"committed"},"type":"counter",
  "value":700},
 {"name":"locomov_writer_packets_total","labels":{"outcome":"duplicate"},"type":"counter",
  "value":2},
 {"name":"locomov_writer_batch_rows","labels":{},"type":"histogram","count":14,"sum":540,
  "buckets":[{"le":1,"count":0},{"le":10,"count":4},{"le":100,"count":14},
             {"le":"+Inf","count":14}]},
 {"name":"locomov_writer_commit_seconds","labels":{},"type":"histogram","count":14,"sum":0.09,
  "buckets":[{"le":0.001,"count":0},{"le":0.01,"count":10},{"le":"+Inf","count":14}]},
 {"name":"locomov_writer_errors_total","labels":{},"type":"counter","value":0},
 {"name":"locomov_spool_packets","labels":{},"type":"gauge","value":0},
 {"name":"locomov_spool_bytes","labels":{},"type":"gauge","value":0},
 {"name":"process_resident_memory_bytes","labels":{},"type":"gauge","value":52428800},
 {"name":"process_open_fds","labels":{},"type":"gauge","value":42},
 {"name":"locomov_open_files_limit","labels":{},"type":"gauge","value":1024},
 {"name":"locomov_uptime_seconds","labels":{},"type":"gauge","value":3727}
]})";

const clock::time_point t0{};

std::vector<histogram_bucket> buckets(std::initializer_list<histogram_bucket> list) { return list; }

TEST(StatsParse, ReadsCountersGaugesAndTheirLabels) {
  const auto snap = parse_stats(first_poll, t0);
  const auto* accepted = snap.find("locomov_connections_accepted_total", {{"listener", "packet"}});
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->type, stats_series::kind::counter);
  EXPECT_EQ(accepted->value, 40);

  const auto* open = snap.find("locomov_connections_open");
  ASSERT_NE(open, nullptr);
  EXPECT_EQ(open->type, stats_series::kind::gauge);
  EXPECT_EQ(open->value, 12);
  EXPECT_EQ(snap.named("locomov_connections_refused_total").size(), 2u);
  EXPECT_EQ(snap.find("locomov_connections_accepted_total", {{"listener", "nowhere"}}), nullptr);
}

TEST(StatsParse, ReadsHistogramsWithTheInfBucketAsAString) {
  const auto snap = parse_stats(first_poll, t0);
  const auto* h = snap.find("locomov_actor_message_seconds", {{"kind", "pub"}});
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->type, stats_series::kind::histogram);
  EXPECT_EQ(h->count, 100);
  EXPECT_DOUBLE_EQ(h->sum, 0.01);
  ASSERT_EQ(h->buckets.size(), 3u);
  EXPECT_DOUBLE_EQ(h->buckets[0].le, 0.0001);
  EXPECT_EQ(h->buckets[0].count, 60);
  EXPECT_EQ(h->buckets[2].le, inf);
  EXPECT_EQ(h->buckets[2].count, 100);
}

TEST(StatsParse, SortsBucketsByBound) {
  const auto snap = parse_stats(R"({"metrics":[{"name":"h","labels":{},"type":"histogram",
      "count":3,"sum":1,"buckets":[{"le":"+Inf","count":3},{"le":2,"count":3},
      {"le":1,"count":1}]}]})",
                                t0);
  ASSERT_EQ(snap.series.size(), 1u);
  const auto& b = snap.series[0].buckets;
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].le, 1);
  EXPECT_EQ(b[1].le, 2);
  EXPECT_EQ(b[2].le, inf);
}

TEST(StatsParse, LeavesOutSeriesOfATypeItDoesNotKnow) {
  const auto snap = parse_stats(R"({"metrics":[
      {"name":"a","labels":{},"type":"summary","count":1,"sum":1},
      {"name":"b","labels":{},"type":"gauge","value":7}]})",
                                t0);
  ASSERT_EQ(snap.series.size(), 1u);
  EXPECT_EQ(snap.series[0].name, "b");
}

TEST(StatsParse, RefusesDocumentsOfAnotherShape) {
  EXPECT_THROW(parse_stats("<html>not found</html>", t0), stats_format_error);
  EXPECT_THROW(parse_stats(R"({"series":[]})", t0), stats_format_error);
  EXPECT_THROW(parse_stats(R"({"metrics":[{"labels":{},"type":"gauge","value":1}]})", t0),
               stats_format_error);
  EXPECT_THROW(parse_stats(R"({"metrics":[{"name":"a","type":"gauge","value":"1"}]})", t0),
               stats_format_error);
  EXPECT_THROW(parse_stats(R"({"metrics":[{"name":"a","labels":{"k":1},"type":"gauge",
      "value":1}]})",
                           t0),
               stats_format_error);
  EXPECT_THROW(parse_stats(R"({"metrics":[{"name":"h","type":"histogram","count":1,"sum":1,
      "buckets":[{"le":"inf","count":1}]}]})",
                           t0),
               stats_format_error);
  EXPECT_THROW(
      parse_stats(R"({"metrics":[{"name":"h","type":"histogram","count":1,"sum":1}]})", t0),
      stats_format_error);
}

// The example of Prometheus' documentation of histogram_quantile, worked by
// hand: 100 observations, 50 up to 0.1, 90 up to 0.25, all up to 0.5.
const auto latency = buckets({{0.05, 0}, {0.1, 50}, {0.25, 90}, {0.5, 100}, {inf, 100}});

TEST(HistogramQuantile, InterpolatesLinearlyInsideTheBucketOfTheRank) {
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, latency), 0.1);
  EXPECT_DOUBLE_EQ(histogram_quantile(0.7, latency), 0.1 + 0.15 * (20.0 / 40.0));
  EXPECT_DOUBLE_EQ(histogram_quantile(0.99, latency), 0.25 + 0.25 * (9.0 / 10.0));
}

TEST(HistogramQuantile, LowestBucketStartsAtZero) {
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, buckets({{1, 10}, {inf, 10}})), 0.5);
  EXPECT_DOUBLE_EQ(histogram_quantile(0.25, buckets({{0.2, 4}, {1, 8}, {inf, 8}})), 0.1);
}

TEST(HistogramQuantile, RankInTheInfBucketGivesTheHighestFiniteBound) {
  EXPECT_EQ(histogram_quantile(0.9, buckets({{0.1, 5}, {1, 5}, {inf, 10}})), 1);
}

TEST(HistogramQuantile, NoObservationOrNoInfBucketGivesNaN) {
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, buckets({{1, 0}, {inf, 0}}))));
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, buckets({{1, 3}, {2, 5}}))));
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, buckets({{inf, 5}}))));
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, {})));
}

TEST(HistogramQuantile, OutOfRangeQuantilesGiveInfinities) {
  EXPECT_EQ(histogram_quantile(-0.1, latency), -inf);
  EXPECT_EQ(histogram_quantile(1.5, latency), inf);
}

TEST(HistogramDelta, SubtractsCountSumAndEachBucket) {
  const auto before = parse_stats(first_poll, t0);
  const auto now = parse_stats(second_poll, t0 + 2s);
  const auto* h = now.find("locomov_actor_message_seconds", {{"kind", "pub"}});
  const auto d =
      histogram_delta(*h, before.find("locomov_actor_message_seconds", {{"kind", "pub"}}));
  EXPECT_EQ(d.count, 200);
  EXPECT_DOUBLE_EQ(d.sum, 0.02);
  ASSERT_EQ(d.buckets.size(), 3u);
  EXPECT_EQ(d.buckets[0].count, 100);
  EXPECT_EQ(d.buckets[1].count, 200);
  EXPECT_EQ(d.buckets[2].count, 200);
}

TEST(HistogramDelta, RestartedDaemonOrNoEarlierPollGivesTheHistogramWhole) {
  stats_series old;
  old.type = stats_series::kind::histogram;
  old.count = 50;
  old.sum = 5;
  old.buckets = buckets({{1, 50}, {inf, 50}});
  stats_series now = old;
  now.count = 3;
  now.sum = 0.3;
  now.buckets = buckets({{1, 3}, {inf, 3}});

  EXPECT_EQ(histogram_delta(now, &old).count, 3);
  EXPECT_EQ(histogram_delta(now, nullptr).count, 3);
}

TEST(CounterRate, IncreasePerSecondAndRestartFromZero) {
  EXPECT_DOUBLE_EQ(counter_rate(60, 40, 2), 10);
  EXPECT_DOUBLE_EQ(counter_rate(40, 40, 2), 0);
  EXPECT_DOUBLE_EQ(counter_rate(6, 40, 2), 3);
  EXPECT_TRUE(std::isnan(counter_rate(6, 4, 0)));
}

TEST(StatsUrl, HostPortAndTheStatsPath) {
  const auto url = parse_stats_url("http://127.0.0.1:38980");
  EXPECT_EQ(url.host, "127.0.0.1");
  EXPECT_EQ(url.port, 38980);
  EXPECT_EQ(url.path, "/stats");
  EXPECT_EQ(parse_stats_url("http://127.0.0.1:38980/").path, "/stats");
  EXPECT_EQ(parse_stats_url("http://127.0.0.1:38980/stats").path, "/stats");
  EXPECT_EQ(parse_stats_url("http://proxy/locomov/").path, "/locomov/stats");
  EXPECT_EQ(parse_stats_url("http://proxy/locomov").port, 80);
}

TEST(StatsUrl, IPv6AddressInBrackets) {
  const auto url = parse_stats_url("http://[::1]:38980");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 38980);
  EXPECT_EQ(parse_stats_url("http://[::1]").port, 80);
}

TEST(StatsUrl, RefusesWhatTheEndpointDoesNotServe) {
  EXPECT_THROW(parse_stats_url("https://127.0.0.1:38980"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("127.0.0.1:38980"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("http://:38980"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("http://127.0.0.1:"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("http://127.0.0.1:99999"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("http://127.0.0.1:38980x"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("http://[::1:38980"), std::invalid_argument);
  EXPECT_THROW(parse_stats_url("http://127.0.0.1/stats?x=1"), std::invalid_argument);
}

TEST(StatsInterval, UnitsAndBareSeconds) {
  EXPECT_EQ(parse_interval("200ms"), 200ms);
  EXPECT_EQ(parse_interval("1s"), 1000ms);
  EXPECT_EQ(parse_interval("1.5s"), 1500ms);
  EXPECT_EQ(parse_interval("2m"), 120'000ms);
  EXPECT_EQ(parse_interval("3"), 3000ms);
}

TEST(StatsInterval, RefusesNonPositiveOrUnknown) {
  EXPECT_THROW(parse_interval("0s"), std::invalid_argument);
  EXPECT_THROW(parse_interval("-1s"), std::invalid_argument);
  EXPECT_THROW(parse_interval("0.1ms"), std::invalid_argument);
  EXPECT_THROW(parse_interval("1h"), std::invalid_argument);
  EXPECT_THROW(parse_interval("soon"), std::invalid_argument);
  EXPECT_THROW(parse_interval("nan"), std::invalid_argument);
  EXPECT_THROW(parse_interval("1e30s"), std::invalid_argument);
}

/// The lines of `text` from the one equal to `title` up to the next line
/// that starts a section (not indented), without it.
std::string section(const std::string& text, const std::string& title) {
  const auto start = text.find("\n" + title);
  if (start == std::string::npos) {
    return {};
  }
  auto end = start + 1;
  do {
    end = text.find('\n', end) + 1;
  } while (end < text.size() && text[end] == ' ');
  return text.substr(start + 1, end - start - 1);
}

TEST(StatsRender, RatesAndTimesCoverTheTimeBetweenTwoPolls) {
  const auto before = parse_stats(first_poll, t0);
  const auto now = parse_stats(second_poll, t0 + 2s);
  const auto text = render_stats(now, &before, "http://127.0.0.1:38980/stats");

  EXPECT_EQ(text.substr(0, text.find('\n')),
            "locomov at http://127.0.0.1:38980/stats, rates over the last 2.0 s");
  // pub: 200 messages in 2 s; 200 observations summing 0.02 s; the 198th
  // lies 98/100 of the way into the (0.0001, 0.001] bucket.
  EXPECT_EQ(section(text, "Actors"),
            "Actors\n"
            "  kind        alive  mailbox  peak  msgs/s      mean       p99\n"
            "  connection     12        2     9     0.0         -         -\n"
            "  pub             5        0     4   100.0  100.0 us  982.0 us\n");
  EXPECT_EQ(section(text, "Connections"),
            "Connections  open 14\n"
            "  listener  accepted/s  accepted  refused  evicted\n"
            "  confo            0.0         3        -        -\n"
            "  packet          10.0        60        5        -\n"
            "  refused by reason: overall_limit 0 (0.0/s), per_address_limit 5 (2.0/s)\n");
  EXPECT_EQ(section(text, "Packets"),
            "Packets\n"
            "  outcome    per s  total\n"
            "  committed  100.0    700\n"
            "  duplicate    0.0      2\n");
  // 4 batches in 2 s, all of 10 rows or fewer (rows: 4 in (1, 10]); 4
  // commits, all over the highest finite bound 0.01 s.
  EXPECT_EQ(section(text, "Writers"),
            "Writers  errors 0 (0.0/s)\n"
            "                  p50      p99     mean  per s\n"
            "  batch rows        6       10     10.0    2.0\n"
            "  commit      10.0 ms  10.0 ms  10.0 ms    2.0\n");
  EXPECT_EQ(section(text, "Spool"), "Spool  packets 0  size 0 B\n");
  EXPECT_EQ(section(text, "Process"), "Process  up 1h02m07s  rss 50.0 MiB  fds 42 of 1024\n");
}

TEST(StatsRender, FirstPollShowsNoRatesAndTimesSinceStart) {
  const auto now = parse_stats(first_poll, t0);
  const auto text = render_stats(now, nullptr, "here");

  EXPECT_EQ(text.substr(0, text.find('\n')),
            "locomov at here, first poll: rates from the next one, times since start");
  // 100 observations since start, 60 up to 0.1 ms: the 99th is 39/40 of the
  // way into the (0.1 ms, 1 ms] bucket.
  EXPECT_NE(text.find("  pub             5        0     4       -  100.0 us  977.5 us\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  packet             -        40        1        -\n"), std::string::npos)
      << text;
}

TEST(StatsRender, ShowsOnlySectionsWhoseSeriesExist) {
  const auto now = parse_stats(R"({"metrics":[
      {"name":"locomov_connections_open","labels":{},"type":"gauge","value":3},
      {"name":"locomov_uptime_seconds","labels":{},"type":"gauge","value":59}]})",
                               t0);
  EXPECT_EQ(render_stats(now, nullptr, "here"),
            "locomov at here, first poll: rates from the next one, times since start\n"
            "Process  up 59s\n"
            "Connections  open 3\n");
}

TEST(StatsRender, HoldsNoBlankLine) {
  const auto before = parse_stats(first_poll, t0);
  const auto now = parse_stats(second_poll, t0 + 2s);
  for (const auto& text : {render_stats(now, &before, "here"), render_stats(now, nullptr, "here"),
                           render_stats(parse_stats(R"({"metrics":[]})", t0), nullptr, "here")}) {
    EXPECT_EQ(text.find("\n\n"), std::string::npos) << text;
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
  }
}

}  // namespace
}  // namespace locomov::ctl
