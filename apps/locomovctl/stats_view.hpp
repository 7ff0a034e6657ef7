#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace locomov::ctl {

/// A /stats document that does not have the shape status_server writes.
class stats_format_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One bucket of a histogram: how many observations were at most `le`,
/// counted cumulatively as Prometheus does. The last bucket's `le` is +inf.
struct histogram_bucket {
  double le = 0;
  double count = 0;
};

/// One series of /stats: a counter or gauge has `value`; a histogram has
/// `count`, `sum` and `buckets` (sorted by `le`, ending with +inf).
struct stats_series {
  enum class kind { counter, gauge, histogram };
  std::string name;
  std::map<std::string, std::string> labels;
  kind type = kind::gauge;
  double value = 0;
  double count = 0;
  double sum = 0;
  std::vector<histogram_bucket> buckets;

  /// The value of label `key`, or "" when the series has none.
  std::string label(const std::string& key) const;
};

/// Every series of one poll of /stats, and when the poll was answered.
struct stats_snapshot {
  std::chrono::steady_clock::time_point taken;
  std::vector<stats_series> series;

  /// The series called `name`, in document order.
  std::vector<const stats_series*> named(std::string_view name) const;

  /// The series called `name` with exactly `labels`, or nullptr.
  const stats_series* find(std::string_view name,
                           const std::map<std::string, std::string>& labels = {}) const;
};

/// Parses the body of GET /stats (`{"metrics":[...]}`, as
/// net/status_server.cpp writes it, histograms included). Throws
/// stats_format_error naming what is missing or of the wrong type.
stats_snapshot parse_stats(std::string_view json, std::chrono::steady_clock::time_point taken);

/// The `q` quantile (0 to 1) of a histogram's cumulative buckets, estimated
/// as Prometheus' histogram_quantile does: linear interpolation inside the
/// bucket that holds the rank, the lowest bucket starting at 0, and the
/// highest finite bound when the rank falls in the +inf bucket. NaN when the
/// histogram holds no observation or has no finite bucket.
double histogram_quantile(double q, const std::vector<histogram_bucket>& buckets);

/// How far a histogram moved from `before` to `now`: bucket by bucket, count
/// and sum. When the bucket bounds differ, or a count went down (the daemon
/// restarted), `now` is returned whole, as Prometheus treats a counter reset.
stats_series histogram_delta(const stats_series& now, const stats_series* before);

/// Per second increase of a counter between two polls taken `seconds`
/// apart; a counter that went down restarted from 0, so its whole value is
/// the increase.
double counter_rate(double now, double before, double seconds);

/// Where the status endpoint is, from a URL such as
/// `http://127.0.0.1:38980` (no path, "/", a prefix a proxy adds, or the
/// path of /stats itself).
struct stats_url {
  std::string host;  ///< an IPv6 address without its brackets
  int port = 80;
  std::string path;  ///< of /stats, always starting with '/'
};

/// Parses `text` into a stats_url; throws std::invalid_argument saying what
/// is wrong. Only `http` is taken: the endpoint serves plain HTTP.
stats_url parse_stats_url(const std::string& text);

/// "200ms", "1s", "1.5s", "2m" or a bare number of seconds, as a duration;
/// throws std::invalid_argument unless it is positive.
std::chrono::milliseconds parse_interval(const std::string& text);

/// Renders one refresh of `locomovctl stats` as lines of text with no blank
/// line among them (the non-tty output separates refreshes by one). Rates
/// and per-message times cover the time since `before`; without it, rates
/// are shown as "-" and times cover the daemon's whole life. A section
/// appears only when the daemon exports its series. `source` names the
/// endpoint in the title line.
std::string render_stats(const stats_snapshot& now, const stats_snapshot* before,
                         const std::string& source);

}  // namespace locomov::ctl
