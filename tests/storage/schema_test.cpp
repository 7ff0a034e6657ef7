#include "storage/schema.hpp"

#include <gtest/gtest.h>

#include <map>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "protocol/reading.hpp"
#include "storage/migrations.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::storage {
namespace {

using column_list = std::vector<std::pair<std::string, std::string>>;

class Schema : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = test::pg_cluster::shared().fresh_database();
    conn_ = std::make_unique<pqxx::connection>(conninfo_);
  }

  /// Name and type of each column of `table`, in table order.
  column_list columns(const std::string& table) {
    pqxx::nontransaction tx(*conn_);
    column_list out;
    for (const auto& row : tx.exec_params(
             "SELECT column_name, data_type FROM information_schema.columns "
             "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
             table)) {
      out.emplace_back(row[0].as<std::string>(), row[1].as<std::string>());
    }
    return out;
  }

  std::vector<std::string> index_definitions(const std::string& table) {
    pqxx::nontransaction tx(*conn_);
    std::vector<std::string> out;
    for (const auto& row : tx.exec_params(
             "SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname", table)) {
      out.push_back(row[0].as<std::string>());
    }
    return out;
  }

  int count(const std::string& sql) {
    pqxx::nontransaction tx(*conn_);
    return tx.exec(sql)[0][0].as<int>();
  }

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

/// The columns packet and quarantine must have: readings in the order and
/// with the names of protocol::reading_fields, `protected` after frequency.
column_list expected_packet_columns() {
  column_list c{{"id", "integer"},
                {"pub_id", "integer"},
                {"created_at", "timestamp with time zone"},
                {"saved_at", "timestamp with time zone"}};
  for (std::size_t i = 0; i < protocol::reading_count; ++i) {
    if (i == static_cast<std::size_t>(protocol::field::current)) {
      c.emplace_back("protected", "boolean");
    }
    c.emplace_back(std::string(protocol::reading_fields[i].column), "real");
  }
  c.emplace_back("latitude", "double precision");
  c.emplace_back("longitude", "double precision");
  return c;
}

TEST(Migrations, AreNumberedFromOneWithoutGaps) {
  ASSERT_GT(migration_count, 0u);
  for (std::size_t i = 0; i < migration_count; ++i) {
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1) << migrations[i].name;
    EXPECT_FALSE(migrations[i].sql.empty()) << migrations[i].name;
  }
  EXPECT_EQ(latest_schema_version(), static_cast<int>(migration_count));
}

TEST_F(Schema, EmptyDatabaseHasVersionZero) {
  EXPECT_EQ(schema_version(*conn_), 0);
}

TEST_F(Schema, MigrateBringsEmptyDatabaseToLatest) {
  EXPECT_EQ(migrate(*conn_), latest_schema_version());
  EXPECT_EQ(schema_version(*conn_), latest_schema_version());
  EXPECT_EQ(count("SELECT count(*) FROM schema_version"), latest_schema_version());
}

TEST_F(Schema, RerunningMigrateChangesNothing) {
  migrate(*conn_);
  const std::string before = [&] {
    pqxx::nontransaction tx(*conn_);
    return tx.exec("SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version) "
                   "FROM schema_version")[0][0]
        .as<std::string>();
  }();

  EXPECT_EQ(migrate(*conn_), latest_schema_version());

  pqxx::nontransaction tx(*conn_);
  const auto after = tx.exec(
      "SELECT string_agg(version || '@' || applied_at, ',' ORDER BY version) "
      "FROM schema_version")[0][0];
  EXPECT_EQ(after.as<std::string>(), before);
}

TEST_F(Schema, PacketAndQuarantineColumnsFollowReadingFields) {
  migrate(*conn_);
  EXPECT_EQ(columns("packet"), expected_packet_columns());
  EXPECT_EQ(columns("quarantine"), expected_packet_columns());
}

TEST_F(Schema, CreatesSeedTablesWithTheirColumns) {
  migrate(*conn_);
  const column_list confo{{"id", "integer"},
                          {"device_name", "text"},
                          {"ssid", "text"},
                          {"hash", "integer"},
                          {"email", "text"},
                          {"longitude", "double precision"},
                          {"latitude", "double precision"},
                          {"device_time", "timestamp with time zone"},
                          {"received_at", "timestamp with time zone"}};
  const std::map<std::string, column_list> expected{
      {"schema_version", {{"version", "integer"}, {"applied_at", "timestamp with time zone"}}},
      {"pub",
       {{"pub_id", "integer"},
        {"created_at", "timestamp with time zone"},
        {"latitude", "double precision"},
        {"longitude", "double precision"},
        {"altitude", "real"},
        {"orientation", "real"},
        {"hash", "integer"},
        {"creator", "text"}}},
      {"sub",
       {{"sub_id", "integer"}, {"email", "text"}, {"created_at", "timestamp with time zone"}}},
      {"csub",
       {{"csub_id", "integer"}, {"email", "text"}, {"created_at", "timestamp with time zone"}}},
      {"subpub", {{"sub_id", "integer"}, {"pub_id", "integer"}}},
      {"confo", confo},
      {"cconfo", confo},
  };
  for (const auto& [table, cols] : expected) {
    EXPECT_EQ(columns(table), cols) << table;
  }
}

TEST_F(Schema, CreatesIndexesAndForeignKeys) {
  migrate(*conn_);
  const auto contains = [](const std::vector<std::string>& defs, const std::string& part) {
    for (const auto& d : defs) {
      if (d.find(part) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  const std::string reading_key =
      " USING btree (pub_id, created_at, protected, voltage, frequency, current, active_power, "
      "apparent_power, reactive_power, power_factor, imp_actv_enrg, exp_actv_enrg, "
      "imp_rctv_enrg, exp_rctv_enrg, ttl_actv_enrg, ttl_rctv_enrg, latitude, longitude) "
      "NULLS NOT DISTINCT";
  EXPECT_TRUE(contains(index_definitions("packet"),
                       "CREATE UNIQUE INDEX packet_reading_key ON public.packet" + reading_key));
  EXPECT_TRUE(contains(index_definitions("quarantine"),
                       "CREATE UNIQUE INDEX quarantine_reading_key ON public.quarantine" +
                           reading_key));
  EXPECT_FALSE(contains(index_definitions("packet"), "packet_pub_id_created_at_idx"));
  EXPECT_TRUE(contains(index_definitions("confo"), "(device_name, ssid, id)"));
  EXPECT_TRUE(contains(index_definitions("cconfo"), "(device_name, ssid, id)"));
  EXPECT_TRUE(contains(index_definitions("pub"), "UNIQUE INDEX pub_hash_key"));

  const std::string foreign_keys =
      "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = ";
  EXPECT_EQ(count(foreign_keys + "'packet'::regclass"), 1);
  EXPECT_EQ(count(foreign_keys + "'quarantine'::regclass"), 0);
  EXPECT_EQ(count(foreign_keys + "'subpub'::regclass"), 2);
}

TEST_F(Schema, MigrateUpToStopsAtThatVersion) {
  EXPECT_EQ(migrate(*conn_, 1), 1);
  EXPECT_EQ(schema_version(*conn_), 1);
  EXPECT_EQ(migrate(*conn_), latest_schema_version());
}

/// Rows a schema at version 1 accepted twice: the reading key of migration 2
/// keeps the first of each, and only rows equal in every column, NULLs
/// included, count as one.
TEST_F(Schema, ReadingKeyMigrationKeepsTheFirstOfEachDuplicate) {
  ASSERT_EQ(migrate(*conn_, 1), 1);
  {
    pqxx::nontransaction tx(*conn_);
    tx.exec0("INSERT INTO pub (pub_id, hash) VALUES (1, 1), (2, 2)");
    for (const char* table : {"packet", "quarantine"}) {
      const std::string insert = std::string("INSERT INTO ") + table +
                                 " (pub_id, created_at, protected, voltage, frequency, latitude) "
                                 "VALUES ";
      tx.exec0(insert +
               "(1, '2019-05-18 00:00:00+00', true, 230.5, NULL, 12.5), "   // kept
               "(1, '2019-05-18 00:00:00+00', true, 230.5, NULL, 12.5), "   // duplicate
               "(1, '2019-05-18 00:00:00+00', true, 230.5, 50, 12.5), "     // kept: frequency
               "(1, '2019-05-18 00:00:00+00', false, 230.5, NULL, 12.5), "  // kept: protected
               "(1, '2019-05-18 00:00:00.000001+00', true, 230.5, NULL, 12.5), "  // kept: time
               "(2, '2019-05-18 00:00:00+00', true, 230.5, NULL, 12.5), "   // kept: pub
               "(1, '2019-05-18 00:00:00+00', true, 230.5, NULL, 12.5), "   // duplicate
               "(2, '2019-05-18 00:00:00+00', true, NULL, NULL, NULL), "    // kept
               "(2, '2019-05-18 00:00:00+00', true, NULL, NULL, NULL)");    // duplicate
    }
  }

  EXPECT_EQ(migrate(*conn_), latest_schema_version());

  for (const std::string table : {"packet", "quarantine"}) {
    pqxx::nontransaction tx(*conn_);
    const auto ids = tx.exec("SELECT string_agg(id::text, ',' ORDER BY id) FROM " + table);
    EXPECT_EQ(ids[0][0].as<std::string>(), "1,3,4,5,6,8") << table;
  }
  pqxx::nontransaction tx(*conn_);
  EXPECT_THROW(tx.exec0("INSERT INTO packet (pub_id, created_at, protected) "
                        "VALUES (2, '2019-05-18 00:00:00+00', true)"),
               pqxx::unique_violation);
}

TEST_F(Schema, ConcurrentMigrationsApplyEachVersionOnce) {
  // More than two racers make an unserialised CREATE TABLE clash likelier.
  constexpr int racers = 4;
  std::vector<int> results(racers, -1);
  std::vector<std::string> errors(racers);
  std::vector<std::thread> threads;
  for (int i = 0; i < racers; ++i) {
    threads.emplace_back([&, i] {
      try {
        pqxx::connection conn(conninfo_);
        results[i] = migrate(conn);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  for (int i = 0; i < racers; ++i) {
    EXPECT_EQ(errors[i], "");
    EXPECT_EQ(results[i], latest_schema_version());
  }
  EXPECT_EQ(count("SELECT count(*) FROM schema_version"), latest_schema_version());
  EXPECT_EQ(count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
}

}  // namespace
}  // namespace locomov::storage
