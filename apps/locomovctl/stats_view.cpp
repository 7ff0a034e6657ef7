#include "apps/locomovctl/stats_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace locomov::ctl {
namespace {

using json = nlohmann::json;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double no_value = std::numeric_limits<double>::quiet_NaN();

/// The `key` member of `entry` as a number, or a stats_format_error naming
/// the series.
double number_member(const json& entry, const char* key, const std::string& series) {
  const auto it = entry.find(key);
  if (it == entry.end() || !it->is_number()) {
    throw stats_format_error("series " + series + ": \"" + key + "\" is missing or not a number");
  }
  return it->get<double>();
}

std::vector<histogram_bucket> parse_buckets(const json& entry, const std::string& series) {
  const auto it = entry.find("buckets");
  if (it == entry.end() || !it->is_array()) {
    throw stats_format_error("series " + series + ": \"buckets\" is missing or not an array");
  }
  std::vector<histogram_bucket> buckets;
  for (const auto& b : *it) {
    if (!b.is_object() || !b.contains("le")) {
      throw stats_format_error("series " + series + ": a bucket has no \"le\"");
    }
    histogram_bucket parsed;
    const auto& le = b["le"];
    if (le.is_number()) {
      parsed.le = le.get<double>();
    } else if (le.is_string() && le.get<std::string>() == "+Inf") {
      parsed.le = inf;
    } else {
      throw stats_format_error("series " + series +
                               ": a bucket's \"le\" is neither a number "
                               "nor \"+Inf\"");
    }
    parsed.count = number_member(b, "count", series);
    buckets.push_back(parsed);
  }
  std::sort(buckets.begin(), buckets.end(),
            [](const histogram_bucket& a, const histogram_bucket& b) { return a.le < b.le; });
  return buckets;
}

/// One entry of the "metrics" array, or nothing for a type this locomovctl
/// does not know (a newer daemon's), which is left out rather than refused.
std::optional<stats_series> parse_series(const json& entry) {
  if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) {
    throw stats_format_error("a series has no \"name\" string");
  }
  stats_series s;
  s.name = entry["name"].get<std::string>();
  if (!entry.contains("type") || !entry["type"].is_string()) {
    throw stats_format_error("series " + s.name + ": \"type\" is missing or not a string");
  }
  const auto type = entry["type"].get<std::string>();

  if (const auto labels = entry.find("labels"); labels != entry.end()) {
    if (!labels->is_object()) {
      throw stats_format_error("series " + s.name + ": \"labels\" is not an object");
    }
    for (const auto& [key, value] : labels->items()) {
      if (!value.is_string()) {
        throw stats_format_error("series " + s.name + ": label " + key + " is not a string");
      }
      s.labels[key] = value.get<std::string>();
    }
  }

  if (type == "counter" || type == "gauge") {
    s.type = type == "counter" ? stats_series::kind::counter : stats_series::kind::gauge;
    s.value = number_member(entry, "value", s.name);
  } else if (type == "histogram") {
    s.type = stats_series::kind::histogram;
    s.count = number_member(entry, "count", s.name);
    s.sum = number_member(entry, "sum", s.name);
    s.buckets = parse_buckets(entry, s.name);
  } else {
    return std::nullopt;
  }
  return s;
}

// --- Formatting -------------------------------------------------------------

std::string printed(const char* format, double v) {
  char text[64];
  std::snprintf(text, sizeof(text), format, v);
  return text;
}

std::string count_text(double v) { return std::isnan(v) ? "-" : printed("%.0f", v); }

std::string rate_text(double v) { return std::isnan(v) ? "-" : printed("%.1f", v); }

std::string seconds_text(double s) {
  if (std::isnan(s)) {
    return "-";
  }
  if (s < 1e-6) {
    return printed("%.0f ns", s * 1e9);
  }
  if (s < 1e-3) {
    return printed("%.1f us", s * 1e6);
  }
  if (s < 1) {
    return printed("%.1f ms", s * 1e3);
  }
  return printed("%.2f s", s);
}

std::string bytes_text(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (b >= 1024 && unit < 4) {
    b /= 1024;
    ++unit;
  }
  return unit == 0 ? printed("%.0f B", b) : printed("%.1f ", b) + units[unit];
}

std::string uptime_text(double seconds) {
  auto s = static_cast<long long>(seconds);
  const long long days = s / 86400;
  const long long hours = s / 3600 % 24;
  const long long minutes = s / 60 % 60;
  s %= 60;
  char text[64];
  if (days > 0) {
    std::snprintf(text, sizeof(text), "%lldd%02lldh%02lldm%02llds", days, hours, minutes, s);
  } else if (hours > 0) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm%02llds", hours, minutes, s);
  } else if (minutes > 0) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", minutes, s);
  } else {
    std::snprintf(text, sizeof(text), "%llds", s);
  }
  return text;
}

/// Rows of cells printed as aligned columns, indented under a section title:
/// the first column (what the row is about) flush left, figures flush right.
class table {
 public:
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  void print(std::ostringstream& out) const {
    std::vector<std::size_t> widths;
    for (const auto& row : rows_) {
      widths.resize(std::max(widths.size(), row.size()));
      for (std::size_t c = 0; c < row.size(); ++c) {
        widths[c] = std::max(widths[c], row[c].size());
      }
    }
    for (const auto& row : rows_) {
      std::string line = " ";
      for (std::size_t c = 0; c < row.size(); ++c) {
        const auto pad = std::string(widths[c] - row[c].size(), ' ');
        line += c == 0 ? " " + row[c] + pad : "  " + pad + row[c];
      }
      out << line << '\n';
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

/// What one refresh compares: the poll shown, the one before it (or none),
/// and the seconds between them.
class window {
 public:
  window(const stats_snapshot& now, const stats_snapshot* before) : now_(now), before_(before) {
    if (before_ != nullptr) {
      seconds_ = std::chrono::duration<double>(now.taken - before->taken).count();
      if (seconds_ <= 0) {
        before_ = nullptr;
      }
    }
  }

  const stats_snapshot& now() const { return now_; }
  bool has_before() const { return before_ != nullptr; }
  double seconds() const { return seconds_; }

  bool has_any(std::initializer_list<const char*> names) const {
    return std::any_of(names.begin(), names.end(),
                       [this](const char* n) { return !now_.named(n).empty(); });
  }

  /// The value of `name{labels}` now, NaN when the daemon has no such series.
  double value(std::string_view name, const std::map<std::string, std::string>& labels = {}) const {
    const auto* s = now_.find(name, labels);
    return s == nullptr ? no_value : s->value;
  }

  /// Per second increase of counter `s` since the last poll; NaN on the
  /// first. A series the last poll lacked was created since, from 0.
  double rate(const stats_series& s) const {
    if (before_ == nullptr) {
      return no_value;
    }
    const auto* old = before_->find(s.name, s.labels);
    return counter_rate(s.value, old == nullptr ? 0 : old->value, seconds_);
  }

  double rate(std::string_view name, const std::map<std::string, std::string>& labels) const {
    const auto* s = now_.find(name, labels);
    return s == nullptr ? no_value : rate(*s);
  }

  /// Histogram `name{labels}` over this window (since the daemon started on
  /// the first poll), or nothing when the daemon has no such series.
  std::optional<stats_series> histogram(std::string_view name,
                                        const std::map<std::string, std::string>& labels) const {
    const auto* s = now_.find(name, labels);
    if (s == nullptr || s->type != stats_series::kind::histogram) {
      return std::nullopt;
    }
    return histogram_delta(*s, before_ == nullptr ? nullptr : before_->find(name, labels));
  }

 private:
  const stats_snapshot& now_;
  const stats_snapshot* before_;
  double seconds_ = 0;
};

double mean_of(const std::optional<stats_series>& h) {
  return h && h->count > 0 ? h->sum / h->count : no_value;
}

double quantile_of(double q, const std::optional<stats_series>& h) {
  return h ? histogram_quantile(q, h->buckets) : no_value;
}

/// Distinct values of label `key` among the series called any of `names`.
std::set<std::string> label_values(const stats_snapshot& snap,
                                   std::initializer_list<const char*> names,
                                   const std::string& key) {
  std::set<std::string> values;
  for (const char* n : names) {
    for (const auto* s : snap.named(n)) {
      values.insert(s->label(key));
    }
  }
  return values;
}

/// "  refused  per_address_limit 4 (0.5/s), overall_limit 0 (-/s)": counter
/// `name` summed over its other labels, one entry per value of `key`.
void print_by_reason(std::ostringstream& out, const window& w, const char* title, const char* name,
                     const std::string& key) {
  std::map<std::string, std::pair<double, double>> totals;  // value -> total, rate
  for (const auto* s : w.now().named(name)) {
    auto& [total, rate] = totals[s->label(key)];
    total += s->value;
    rate += w.rate(*s);
  }
  if (totals.empty()) {
    return;
  }
  out << "  " << title << ' ';
  const char* separator = "";
  for (const auto& [value, figures] : totals) {
    out << separator << value << ' ' << count_text(figures.first) << " ("
        << rate_text(figures.second) << "/s)";
    separator = ", ";
  }
  out << '\n';
}

// --- Sections ---------------------------------------------------------------

constexpr const char* alive = "locomov_actors_alive";
constexpr const char* messages = "locomov_actor_messages_total";
constexpr const char* depth = "locomov_actor_mailbox_depth";
constexpr const char* depth_peak = "locomov_actor_mailbox_depth_peak";
constexpr const char* message_seconds = "locomov_actor_message_seconds";

void print_actors(std::ostringstream& out, const window& w) {
  if (!w.has_any({alive, messages, depth, depth_peak, message_seconds})) {
    return;
  }
  out << "Actors\n";
  table t;
  t.add({"kind", "alive", "mailbox", "peak", "msgs/s", "mean", "p99"});
  for (const auto& kind :
       label_values(w.now(), {alive, messages, depth, depth_peak, message_seconds}, "kind")) {
    const std::map<std::string, std::string> labels{{"kind", kind}};
    const auto h = w.histogram(message_seconds, labels);
    t.add({kind, count_text(w.value(alive, labels)), count_text(w.value(depth, labels)),
           count_text(w.value(depth_peak, labels)), rate_text(w.rate(messages, labels)),
           seconds_text(mean_of(h)), seconds_text(quantile_of(0.99, h))});
  }
  t.print(out);
}

constexpr const char* conn_open = "locomov_connections_open";
constexpr const char* accepted = "locomov_connections_accepted_total";
constexpr const char* refused = "locomov_connections_refused_total";
constexpr const char* evicted = "locomov_connections_evicted_total";

void print_connections(std::ostringstream& out, const window& w) {
  if (!w.has_any({conn_open, accepted, refused, evicted})) {
    return;
  }
  out << "Connections";
  if (const double n = w.value(conn_open); !std::isnan(n)) {
    out << "  open " << count_text(n);
  }
  out << '\n';

  const auto listeners = label_values(w.now(), {accepted, refused, evicted}, "listener");
  if (!listeners.empty()) {
    table t;
    t.add({"listener", "accepted/s", "accepted", "refused", "evicted"});
    for (const auto& listener : listeners) {
      const std::map<std::string, std::string> labels{{"listener", listener}};
      double refused_total = no_value;
      for (const auto* s : w.now().named(refused)) {
        if (s->label("listener") == listener) {
          refused_total = (std::isnan(refused_total) ? 0 : refused_total) + s->value;
        }
      }
      t.add({listener, rate_text(w.rate(accepted, labels)), count_text(w.value(accepted, labels)),
             count_text(refused_total), count_text(w.value(evicted, labels))});
    }
    t.print(out);
  }
  print_by_reason(out, w, "refused by reason:", refused, "reason");
}

constexpr const char* packets = "locomov_writer_packets_total";
constexpr const char* frames_refused = "locomov_frames_refused_total";

void print_packets(std::ostringstream& out, const window& w) {
  if (!w.has_any({packets, frames_refused})) {
    return;
  }
  out << "Packets\n";
  const auto outcomes = label_values(w.now(), {packets}, "outcome");
  if (!outcomes.empty()) {
    table t;
    t.add({"outcome", "per s", "total"});
    for (const auto& outcome : outcomes) {
      double total = 0;
      double rate = 0;
      for (const auto* s : w.now().named(packets)) {
        if (s->label("outcome") == outcome) {
          total += s->value;
          rate += w.rate(*s);
        }
      }
      t.add({outcome.empty() ? "all" : outcome, rate_text(rate), count_text(total)});
    }
    t.print(out);
  }
  print_by_reason(out, w, "frames refused by reason:", frames_refused, "reason");
}

constexpr const char* batch_rows = "locomov_writer_batch_rows";
constexpr const char* commit_seconds = "locomov_writer_commit_seconds";
constexpr const char* writer_errors = "locomov_writer_errors_total";

void print_writers(std::ostringstream& out, const window& w) {
  if (!w.has_any({batch_rows, commit_seconds, writer_errors})) {
    return;
  }
  out << "Writers";
  if (const auto* errors = w.now().find(writer_errors)) {
    out << "  errors " << count_text(errors->value) << " (" << rate_text(w.rate(*errors)) << "/s)";
  }
  out << '\n';
  if (!w.has_any({batch_rows, commit_seconds})) {
    return;
  }
  table t;
  t.add({"", "p50", "p99", "mean", "per s"});
  const auto per_second = [&w](const std::optional<stats_series>& h) {
    return h && w.has_before() ? h->count / w.seconds() : no_value;
  };
  if (const auto rows = w.histogram(batch_rows, {})) {
    t.add({"batch rows", count_text(quantile_of(0.5, rows)), count_text(quantile_of(0.99, rows)),
           rate_text(mean_of(rows)), rate_text(per_second(rows))});
  }
  if (const auto commits = w.histogram(commit_seconds, {})) {
    t.add({"commit", seconds_text(quantile_of(0.5, commits)),
           seconds_text(quantile_of(0.99, commits)), seconds_text(mean_of(commits)),
           rate_text(per_second(commits))});
  }
  t.print(out);
}

constexpr const char* spool_packets = "locomov_spool_packets";
constexpr const char* spool_bytes = "locomov_spool_bytes";
constexpr const char* spool_drained = "locomov_spool_drained_packets_total";
constexpr const char* spool_refusals = "locomov_spool_refusals_total";

void print_spool(std::ostringstream& out, const window& w) {
  if (!w.has_any({spool_packets, spool_bytes, spool_drained, spool_refusals})) {
    return;
  }
  out << "Spool";
  if (const double n = w.value(spool_packets); !std::isnan(n)) {
    out << "  packets " << count_text(n);
  }
  if (const double b = w.value(spool_bytes); !std::isnan(b)) {
    out << "  size " << bytes_text(b);
  }
  if (const auto* drained = w.now().find(spool_drained)) {
    out << "  drained/s " << rate_text(w.rate(*drained));
  }
  if (const auto* refusals = w.now().find(spool_refusals)) {
    out << "  refused batches " << count_text(refusals->value);
  }
  out << '\n';
}

constexpr const char* uptime = "locomov_uptime_seconds";
constexpr const char* rss = "process_resident_memory_bytes";
constexpr const char* fds = "process_open_fds";
constexpr const char* fd_limit = "locomov_open_files_limit";

void print_process(std::ostringstream& out, const window& w) {
  if (!w.has_any({uptime, rss, fds})) {
    return;
  }
  out << "Process";
  if (const double s = w.value(uptime); !std::isnan(s)) {
    out << "  up " << uptime_text(s);
  }
  if (const double b = w.value(rss); !std::isnan(b)) {
    out << "  rss " << bytes_text(b);
  }
  if (const double n = w.value(fds); !std::isnan(n)) {
    out << "  fds " << count_text(n);
    if (const double limit = w.value(fd_limit); !std::isnan(limit)) {
      out << " of " << count_text(limit);
    }
  }
  out << '\n';
}

}  // namespace

std::string stats_series::label(const std::string& key) const {
  const auto it = labels.find(key);
  return it == labels.end() ? std::string() : it->second;
}

std::vector<const stats_series*> stats_snapshot::named(std::string_view name) const {
  std::vector<const stats_series*> found;
  for (const auto& s : series) {
    if (s.name == name) {
      found.push_back(&s);
    }
  }
  return found;
}

const stats_series* stats_snapshot::find(std::string_view name,
                                         const std::map<std::string, std::string>& labels) const {
  for (const auto& s : series) {
    if (s.name == name && s.labels == labels) {
      return &s;
    }
  }
  return nullptr;
}

stats_snapshot parse_stats(std::string_view text, std::chrono::steady_clock::time_point taken) {
  const auto doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) {
    throw stats_format_error("not JSON");
  }
  if (!doc.is_object() || !doc.contains("metrics") || !doc["metrics"].is_array()) {
    throw stats_format_error("no \"metrics\" array");
  }
  stats_snapshot snap;
  snap.taken = taken;
  for (const auto& entry : doc["metrics"]) {
    if (auto s = parse_series(entry)) {
      snap.series.push_back(std::move(*s));
    }
  }
  return snap;
}

double histogram_quantile(double q, const std::vector<histogram_bucket>& buckets) {
  if (q < 0) {
    return -inf;
  }
  if (q > 1) {
    return inf;
  }
  if (buckets.size() < 2 || !std::isinf(buckets.back().le)) {
    return no_value;
  }
  const double observations = buckets.back().count;
  if (observations <= 0) {
    return no_value;
  }

  double rank = q * observations;
  std::size_t b = 0;
  while (b < buckets.size() - 1 && buckets[b].count < rank) {
    ++b;
  }
  if (b == buckets.size() - 1) {
    return buckets[b - 1].le;
  }
  if (b == 0 && buckets[0].le <= 0) {
    return buckets[0].le;
  }

  double start = 0;
  double in_bucket = buckets[b].count;
  if (b > 0) {
    start = buckets[b - 1].le;
    in_bucket -= buckets[b - 1].count;
    rank -= buckets[b - 1].count;
  }
  // Only q = 0 can land on an empty bucket; its lower bound is the answer.
  if (in_bucket <= 0) {
    return start;
  }
  return start + (buckets[b].le - start) * (rank / in_bucket);
}

stats_series histogram_delta(const stats_series& now, const stats_series* before) {
  if (before == nullptr || before->buckets.size() != now.buckets.size() ||
      before->count > now.count) {
    return now;
  }
  stats_series delta = now;
  delta.count -= before->count;
  delta.sum -= before->sum;
  for (std::size_t i = 0; i < now.buckets.size(); ++i) {
    if (before->buckets[i].le != now.buckets[i].le ||
        before->buckets[i].count > now.buckets[i].count) {
      return now;
    }
    delta.buckets[i].count -= before->buckets[i].count;
  }
  return delta;
}

double counter_rate(double now, double before, double seconds) {
  if (seconds <= 0) {
    return no_value;
  }
  return (now >= before ? now - before : now) / seconds;
}

stats_url parse_stats_url(const std::string& text) {
  const std::string scheme = "http://";
  if (text.rfind("https://", 0) == 0) {
    throw std::invalid_argument("the status endpoint serves plain HTTP: use http://");
  }
  if (text.rfind(scheme, 0) != 0) {
    throw std::invalid_argument("give a URL such as http://127.0.0.1:38980");
  }
  if (text.find_first_of("?#") != std::string::npos) {
    throw std::invalid_argument("a query or fragment is not taken");
  }

  stats_url url;
  const auto path_at = text.find('/', scheme.size());
  const auto authority = text.substr(scheme.size(), path_at - scheme.size());
  std::string port_text;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) {
      throw std::invalid_argument("an IPv6 address lacks its ']'");
    }
    url.host = authority.substr(1, close - 1);
    const auto rest = authority.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') {
      throw std::invalid_argument("unexpected text after the IPv6 address");
    }
    has_port = !rest.empty();
    port_text = rest.empty() ? "" : rest.substr(1);
  } else {
    const auto colon = authority.find(':');
    url.host = authority.substr(0, colon);
    has_port = colon != std::string::npos;
    port_text = has_port ? authority.substr(colon + 1) : "";
  }
  if (url.host.empty()) {
    throw std::invalid_argument("the URL names no host");
  }
  if (has_port) {
    const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                        std::all_of(port_text.begin(), port_text.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    url.port = digits ? std::stoi(port_text) : 0;
    if (url.port < 1 || url.port > 65535) {
      throw std::invalid_argument("the port is not a number from 1 to 65535");
    }
  }

  std::string path = path_at == std::string::npos ? "" : text.substr(path_at);
  const std::string stats = "/stats";
  const bool ends_in_stats = path.size() >= stats.size() &&
                             path.compare(path.size() - stats.size(), stats.size(), stats) == 0;
  if (!ends_in_stats) {
    while (!path.empty() && path.back() == '/') {
      path.pop_back();
    }
    path += stats;
  }
  url.path = path;
  return url;
}

std::chrono::milliseconds parse_interval(const std::string& text) {
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("not a duration: " + text + " (e.g. 500ms, 1s, 2m)");
  }
  const auto unit = text.substr(used);
  double ms = 0;
  if (unit.empty() || unit == "s") {
    ms = number * 1000;
  } else if (unit == "ms") {
    ms = number;
  } else if (unit == "m") {
    ms = number * 60'000;
  } else {
    throw std::invalid_argument("unknown unit in " + text + " (ms, s or m)");
  }
  // Over a day is taken as a mistake, and keeps the cast below in range.
  if (!(ms >= 1) || ms > 86'400'000) {
    throw std::invalid_argument("the interval must be from 1ms to 24 h: " + text);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

std::string render_stats(const stats_snapshot& now, const stats_snapshot* before,
                         const std::string& source) {
  const window w(now, before);
  std::ostringstream out;
  out << "locomov at " << source;
  if (w.has_before()) {
    out << ", rates over the last " << printed("%.1f", w.seconds()) << " s\n";
  } else {
    out << ", first poll: rates from the next one, times since start\n";
  }
  print_process(out, w);
  print_actors(out, w);
  print_connections(out, w);
  print_packets(out, w);
  print_writers(out, w);
  print_spool(out, w);
  return out.str();
}

}  // namespace locomov::ctl
