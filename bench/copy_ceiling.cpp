// locomov_copy_ceiling: how many rows per second this machine's PostgreSQL
// accepts by COPY into the packet table, committed in batches the way
// locomov's writers commit them. It is the ceiling the daemon's persistent
// connection figures are compared against, so it uses the same columns and
// COPY path (pqxx::tablewriter) and nothing else.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct options {
  std::string db;
  long rows = 200000;
  int batch = 1000;
  int writers = 1;
  bool keep = false;
  bool json = false;
};

// The columns a locomov writer fills; saved_at and id take their defaults.
const std::vector<std::string> columns = {
    "pub_id",        "created_at",    "voltage",       "frequency",     "protected",
    "current",       "active_power",  "apparent_power", "reactive_power", "power_factor",
    "imp_actv_enrg", "exp_actv_enrg", "imp_rctv_enrg", "exp_rctv_enrg", "ttl_actv_enrg",
    "ttl_rctv_enrg", "latitude",      "longitude"};

std::vector<std::string> make_row(int pub_id, long n) {
  // Distinct times and readings per row, as a fleet produces them.
  const long base = 1764547200L + n;  // 2025-12-01T00:00:00Z onwards
  const std::time_t t = static_cast<std::time_t>(base);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S+00", &tm);
  std::vector<std::string> row = {std::to_string(pub_id), stamp,
                                  std::to_string(220.0 + static_cast<double>(n % 1000) / 100.0),
                                  "50.01", (n % 2) != 0 ? "t" : "f"};
  for (int i = 0; i < 11; ++i) {
    row.push_back(std::to_string(static_cast<double>(n % 97) + i * 0.5));
  }
  row.emplace_back("13.0");
  row.emplace_back("77.5");
  return row;
}

/// COPYs `count` rows starting at `first` in transactions of `batch` rows.
void copy_rows(const std::string& db, const std::vector<int>& pubs, long first, long count,
               int batch) {
  pqxx::connection conn{db};
  long n = first;
  const long end = first + count;
  while (n < end) {
    pqxx::work tx{conn};
    {
      pqxx::tablewriter writer(tx, "packet", columns.begin(), columns.end());
      for (int i = 0; i < batch && n < end; ++i, ++n) {
        writer << make_row(pubs[static_cast<std::size_t>(n) % pubs.size()], n);
      }
      writer.complete();
    }
    tx.commit();
  }
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

  const long per_writer = o.rows / o.writers;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < o.writers; ++w) {
    threads.emplace_back(copy_rows, o.db, pubs, w * per_writer, per_writer, o.batch);
  }
  for (auto& t : threads) {
    t.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const long written = per_writer * o.writers;
  const double rate = static_cast<double>(written) / seconds;

  if (!o.keep) {
    pqxx::work tx{conn};
    tx.exec0("DELETE FROM packet WHERE id > " + tx.quote(max_id));
    tx.commit();
  }

  if (o.json) {
    std::cout << nlohmann::json{{"rows", written},       {"batch", o.batch},
                                {"writers", o.writers},  {"seconds", seconds},
                                {"rows_per_s", rate}}
                     .dump()
              << "\n";
  } else {
    std::printf("copy ceiling: %ld rows in %.2f s by %d writer(s), %d rows per commit: "
                "%.0f rows/s\n",
                written, seconds, o.writers, o.batch, rate);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locomov_copy_ceiling: rows/s PostgreSQL accepts by COPY into packet"};
  options o;
  app.add_option("--db", o.db, "libpq connection string of a migrated locomov database")
      ->required();
  app.add_option("--rows", o.rows, "Rows to write")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "Rows per transaction")->capture_default_str()->check(
      CLI::PositiveNumber);
  app.add_option("--writers", o.writers, "Concurrent connections")->capture_default_str()->check(
      CLI::Range(1, 64));
  app.add_flag("--keep", o.keep, "Keep the rows written (they are deleted by default)");
  app.add_flag("--json", o.json, "Print the result as one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "locomov_copy_ceiling: " << e.what() << "\n";
    return 1;
  }
}
