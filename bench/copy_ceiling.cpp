// locomov_copy_ceiling: how many rows per second this machine's PostgreSQL
// accepts into the packet table, committed in batches the way locomov's
// writers commit them, by two paths in the same run:
//   copy:  plain COPY into `packet` (pqxx::tablewriter, the text prepared
//          before the clock starts), the ceiling the daemon is compared to;
//   store: storage::packet_store::write, the writers' own path (COPY into a
//          staging table, then INSERT ... ON CONFLICT DO NOTHING against the
//          reading key), formatting included;
//   dup:   packet_store::write where every batch ends with a repeat of its
//          first packet, which the writers' fast path refuses: the cost of
//          a batch holding a duplicate (a retry after a commit of unknown
//          outcome, a spool re-delivery).
// The two paths write different times, so neither sees the other's rows as
// duplicates.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "protocol/reading.hpp"
#include "storage/packet_store.hpp"

namespace {

namespace protocol = locomov::protocol;
namespace storage = locomov::storage;
using protocol::field;

struct options {
  std::string db;
  long rows = 200000;
  int batch = 1000;
  int writers = 1;
  std::string path = "both";  // copy and store
  bool keep = false;
  bool json = false;
};

// The columns a locomov writer fills; saved_at and id take their defaults.
const std::vector<std::string> columns = {
    "pub_id",        "created_at",    "voltage",       "frequency",     "protected",
    "current",       "active_power",  "apparent_power", "reactive_power", "power_factor",
    "imp_actv_enrg", "exp_actv_enrg", "imp_rctv_enrg", "exp_rctv_enrg", "ttl_actv_enrg",
    "ttl_rctv_enrg", "latitude",      "longitude"};

/// Row n: distinct times and readings per row, as a fleet produces them.
protocol::reading make_reading(int pub_id, long n) {
  protocol::reading r;
  r.id = pub_id;
  r.created_at_us = (1764547200L + n) * 1'000'000;  // 2025-12-01T00:00:00Z onwards
  r.status = (n % 2) != 0;
  r.set(field::voltage, static_cast<float>(220.0 + static_cast<double>(n % 1000) / 100.0));
  r.set(field::frequency, 50.01f);
  for (std::size_t i = 2; i < protocol::reading_count; ++i) {
    r.set(static_cast<field>(i), static_cast<float>(static_cast<double>(n % 97) +
                                                    static_cast<double>(i - 2) * 0.5));
  }
  r.has_lat = true;
  r.lat = 13.0;
  r.has_lng = true;
  r.lng = 77.5;
  return r;
}

/// One line of COPY text for `columns`.
void append_copy_line(std::string& out, const protocol::reading& r) {
  const std::time_t t = static_cast<std::time_t>(r.created_at_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S+00", &tm);
  char buf[64];
  out += std::to_string(r.id);
  out += '\t';
  out += stamp;
  for (std::size_t i = 0; i < protocol::reading_count; ++i) {
    if (i == static_cast<std::size_t>(field::current)) {
      out += r.status ? "\tt" : "\tf";
    }
    std::snprintf(buf, sizeof buf, "\t%.9g", static_cast<double>(r.values[i]));
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "\t%.17g\t%.17g\n", r.lat, r.lng);
  out += buf;
}

/// The rows [first, first + count) in batches of `batch`; with `repeat`,
/// the last row of each batch repeats its first.
std::vector<std::vector<storage::stored_packet>> make_batches(const std::vector<int>& pubs,
                                                              long first, long count, int batch,
                                                              bool repeat) {
  std::vector<std::vector<storage::stored_packet>> out;
  for (long n = first; n < first + count; ++n) {
    if ((n - first) % batch == 0) {
      out.emplace_back();
      out.back().reserve(static_cast<std::size_t>(batch));
    }
    if (repeat && (n - first) % batch == batch - 1 && batch > 1) {
      out.back().push_back(out.back().front());
      continue;
    }
    const int pub = pubs[static_cast<std::size_t>(n) % pubs.size()];
    out.back().push_back(storage::stored_packet{make_reading(pub, n), pub, false});
  }
  return out;
}

void copy_batches(const std::string& db, const std::vector<std::string>& texts) {
  pqxx::connection conn{db};
  for (const auto& text : texts) {
    pqxx::work tx{conn};
    {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
      pqxx::tablewriter writer(tx, "packet", columns.begin(), columns.end());
#pragma GCC diagnostic pop
      writer.write_raw_line(text);
      writer.complete();
    }
    tx.commit();
  }
}

void store_batches(const std::string& db,
                   const std::vector<std::vector<storage::stored_packet>>& batches) {
  storage::packet_store store{db};
  for (const auto& batch : batches) {
    store.write(batch);
  }
}

struct measurement {
  long rows = 0;
  double seconds = 0;
  double rate() const { return static_cast<double>(rows) / seconds; }
};

/// Runs `path` with o.writers connections over rows [first, first + o.rows).
measurement run_path(const options& o, const std::string& path, const std::vector<int>& pubs,
                     long first) {
  const long per_writer = o.rows / o.writers;
  std::vector<std::vector<std::vector<storage::stored_packet>>> batches;
  std::vector<std::vector<std::string>> texts;
  for (int w = 0; w < o.writers; ++w) {
    batches.push_back(
        make_batches(pubs, first + w * per_writer, per_writer, o.batch, path == "dup"));
    if (path == "copy") {
      texts.emplace_back();
      for (const auto& b : batches.back()) {
        std::string text;
        for (const auto& p : b) {
          append_copy_line(text, p.value);
        }
        texts.back().push_back(std::move(text));
      }
    }
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < o.writers; ++w) {
    if (path == "copy") {
      threads.emplace_back(copy_batches, o.db, std::cref(texts[w]));
    } else {
      threads.emplace_back(store_batches, o.db, std::cref(batches[w]));
    }
  }
  for (auto& t : threads) {
    t.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return measurement{per_writer * o.writers, seconds};
}

int run(const options& o) {
  pqxx::connection conn{o.db};
  std::vector<int> pubs;
  long max_id = 0;
  {
    pqxx::work tx{conn};
    for (const auto& row : tx.exec("SELECT pub_id FROM pub ORDER BY pub_id LIMIT 1000")) {
      pubs.push_back(row[0].as<int>());
    }
    max_id = tx.exec1("SELECT coalesce(max(id), 0) FROM packet")[0].as<long>();
  }
  if (pubs.empty()) {
    std::cerr << "locomov_copy_ceiling: the pub table is empty; insert a pub first\n";
    return 1;
  }

  std::vector<std::string> paths;
  if (o.path == "both") {
    paths = {"copy", "store"};
  } else {
    paths = {o.path};
  }
  nlohmann::json results = nlohmann::json::object();
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto m = run_path(o, paths[i], pubs, static_cast<long>(i) * o.rows);
    results[paths[i]] = {{"rows", m.rows}, {"seconds", m.seconds}, {"rows_per_s", m.rate()}};
    if (!o.json) {
      std::printf("%-5s ceiling: %ld rows in %.2f s by %d writer(s), %d rows per commit: "
                  "%.0f rows/s\n",
                  paths[i].c_str(), m.rows, m.seconds, o.writers, o.batch, m.rate());
    }
  }

  if (!o.keep) {
    pqxx::work tx{conn};
    tx.exec0("DELETE FROM packet WHERE id > " + tx.quote(max_id));
    tx.commit();
  }

  if (o.json) {
    results["batch"] = o.batch;
    results["writers"] = o.writers;
    std::cout << results.dump() << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locomov_copy_ceiling: rows/s PostgreSQL accepts into packet, by plain COPY "
               "and by the writers' packet_store"};
  options o;
  app.add_option("--db", o.db, "libpq connection string of a migrated locomov database")
      ->required();
  app.add_option("--rows", o.rows, "Rows to write per path")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "Rows per transaction")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--writers", o.writers, "Concurrent connections")->capture_default_str()->check(
      CLI::Range(1, 64));
  app.add_option("--path", o.path,
                 "copy (plain COPY), store (packet_store::write), both (copy, then store), "
                 "dup (store, each batch holding one duplicate)")
      ->capture_default_str()
      ->check(CLI::IsMember({"copy", "store", "both", "dup"}));
  app.add_flag("--keep", o.keep, "Keep the rows written (they are deleted by default)");
  app.add_flag("--json", o.json, "Print the results as one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "locomov_copy_ceiling: " << e.what() << "\n";
    return 1;
  }
}
