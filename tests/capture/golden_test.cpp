// The golden captures of tests/captures (made by scripts/make-captures from
// live runs): each, replayed into a fresh database seeded as its live run
// was, must give every recorded reply and exactly the rows that run stored.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <pqxx/pqxx>

#include "actors/pipeline.hpp"
#include "actors/replay.hpp"
#include "capture/record.hpp"
#include "storage/schema.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::test {
namespace {

const std::filesystem::path captures = std::filesystem::path(LOCOMOV_SOURCE_DIR) / "tests/captures";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path.string() + " cannot be read");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The statements of an SQL file without its comment lines.
std::vector<std::string> statements(const std::filesystem::path& path) {
  std::istringstream in(read_text(path));
  std::string sql;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("--", 0) != 0) {
      sql += line + "\n";
    }
  }
  std::vector<std::string> out;
  std::size_t start = 0;
  for (auto end = sql.find(';'); end != std::string::npos; end = sql.find(';', start)) {
    out.push_back(sql.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

/// The rows of rows.sql as psql -At prints them: fields joined by '|',
/// NULL as nothing.
std::vector<std::string> stored_rows(const std::string& conninfo) {
  pqxx::connection conn{conninfo};
  pqxx::nontransaction tx{conn};
  std::vector<std::string> out;
  for (const auto& sql : statements(captures / "rows.sql")) {
    for (const auto& row : tx.exec(sql)) {
      std::string line;
      for (pqxx::row::size_type i = 0; i < row.size(); ++i) {
        line += (i == 0 ? "" : "|") + std::string(row[i].is_null() ? "" : row[i].c_str());
      }
      out.push_back(line);
    }
  }
  return out;
}

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::istringstream in(read_text(path));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    out.push_back(line);
  }
  return out;
}

class CaptureGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CaptureGolden, ReplayGivesTheRecordedRepliesAndRows) {
  const auto name = GetParam();
  const auto conninfo = pg_cluster::shared().fresh_database();
  {
    pqxx::connection conn{conninfo};
    storage::migrate(conn);
    pqxx::nontransaction tx{conn};
    for (const auto& sql : statements(captures / (name + ".seed.sql"))) {
      tx.exec(sql);
    }
  }
  const auto records = capture::read_files({captures / (name + ".jsonl")});
  ASSERT_GT(records.size(), 20u);

  actors::replay_report report;
  {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    actors::writer_settings writers;
    writers.conninfo = conninfo;
    actors::pub_settings pubs;
    actors::confo_settings confos;
    confos.conninfo = conninfo;
    auto pipeline = actors::start_pipeline(sys, writers, pubs, confos);
    report = actors::replay(sys, {pipeline.registry, pipeline.arbiter, pipeline.query}, records,
                            {});
    actors::stop_pipeline(sys, pipeline);
  }
  EXPECT_GT(report.replies_recorded, 10u);
  EXPECT_EQ(report.replies_matching, report.replies_recorded);
  EXPECT_EQ(report.replies_differing + report.replies_missing + report.replies_extra, 0u);
  for (const auto& d : report.differences) {
    ADD_FAILURE() << "conn " << d.conn << " reply " << d.index << ": recorded '" << d.recorded
                  << "', replayed '" << d.replayed << "'";
  }
  EXPECT_EQ(stored_rows(conninfo), lines_of(captures / (name + ".rows")));
}

INSTANTIATE_TEST_SUITE_P(TestsCaptures, CaptureGolden,
                         ::testing::Values("fleet-day", "confo-branches", "bad-inputs"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace locomov::test
