#include "storage/packet_store.hpp"

#include <gtest/gtest.h>

#include <cfloat>
#include <cstdint>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <random>
#include <string>
#include <vector>

#include "protocol/reading.hpp"
#include "storage/schema.hpp"
#include "tests/support/pg_cluster.hpp"

namespace locomov::storage {
namespace {

using protocol::field;
using protocol::reading;
using protocol::reading_count;
using protocol::reading_fields;

/// 2019-05-18 00:00:00.123456 UTC.
constexpr std::int64_t may_2019_us = 1'558'137'600'123'456;

/// A reading with every value present and distinct.
reading full_reading(std::int32_t id, std::int64_t created_at_us) {
  reading r;
  r.id = id;
  r.created_at_us = created_at_us;
  r.status = true;
  for (std::size_t i = 0; i < reading_count; ++i) {
    r.set(static_cast<field>(i), 230.5f + static_cast<float>(i) * 1.25f);
  }
  r.has_lat = true;
  r.lat = 52.520008123456789;
  r.has_lng = true;
  r.lng = -13.404954987654321;
  return r;
}

stored_packet stored(const reading& r, std::int32_t pub_id) {
  return stored_packet{r, pub_id, false};
}

stored_packet quarantined(const reading& r) {
  return stored_packet{r, 0, true};
}

class PacketStore : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = test::pg_cluster::shared().fresh_database();
    check_ = std::make_unique<pqxx::connection>(conninfo_);
    migrate(*check_);
    store_ = std::make_unique<packet_store>(conninfo_);
  }

  /// Inserts a pub row and returns its pub_id.
  std::int32_t add_pub(std::int32_t hash) {
    pqxx::nontransaction tx(*check_);
    return tx.exec_params1("INSERT INTO pub (hash, creator) VALUES ($1, 'test') RETURNING pub_id",
                           hash)[0]
        .as<std::int32_t>();
  }

  long count(const std::string& table) {
    pqxx::nontransaction tx(*check_);
    return tx.exec("SELECT count(*) FROM " + table)[0][0].as<long>();
  }

  /// The rows of `table` read back as readings (id = pub_id), in id order.
  std::vector<reading> read_back(const std::string& table) {
    std::string sql =
        "SELECT pub_id, (extract(epoch FROM created_at) * 1000000)::bigint, protected";
    for (const auto& f : reading_fields) {
      sql += ", " + std::string(f.column);
    }
    sql += ", latitude, longitude FROM " + table + " ORDER BY id";

    pqxx::nontransaction tx(*check_);
    std::vector<reading> out;
    for (const auto& row : tx.exec(sql)) {
      reading r;
      r.id = row[0].as<std::int32_t>();
      r.created_at_us = row[1].as<std::int64_t>();
      r.status = row[2].as<bool>();
      for (std::size_t i = 0; i < reading_count; ++i) {
        const auto& cell = row[static_cast<int>(3 + i)];
        if (!cell.is_null()) {
          r.set(static_cast<field>(i), cell.as<float>());
        }
      }
      const auto& lat = row[static_cast<int>(3 + reading_count)];
      const auto& lng = row[static_cast<int>(4 + reading_count)];
      r.has_lat = !lat.is_null();
      r.lat = r.has_lat ? lat.as<double>() : 0;
      r.has_lng = !lng.is_null();
      r.lng = r.has_lng ? lng.as<double>() : 0;
      out.push_back(r);
    }
    return out;
  }

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> check_;
  std::unique_ptr<packet_store> store_;
};

TEST_F(PacketStore, IsConnectedAfterConstruction) {
  EXPECT_TRUE(store_->connected());
}

TEST_F(PacketStore, ThrowsBrokenConnectionForUnreachableDatabase) {
  EXPECT_THROW(packet_store(test::pg_cluster::shared().conninfo("no_such_database")),
               pqxx::broken_connection);
}

TEST_F(PacketStore, EmptyBatchWritesNothing) {
  store_->write({});
  EXPECT_EQ(count("packet"), 0);
  EXPECT_EQ(count("quarantine"), 0);
}

TEST_F(PacketStore, RoundTripsValuesExactly) {
  const std::int32_t pub = add_pub(77);

  reading extremes = full_reading(pub, may_2019_us);
  extremes.set(field::voltage, 3.4e38f);
  extremes.set(field::frequency, -FLT_MAX);
  extremes.set(field::current, FLT_MIN);
  extremes.set(field::active_power, 0.1f);
  extremes.set(field::apparent_power, -0.0f);
  extremes.set(field::power_factor, 16777217.0f);
  extremes.set(field::imp_actv_enrg, 1.0e-30f);
  extremes.lat = -89.999999999999986;
  extremes.lng = 179.99999999999997;

  reading sparse;
  sparse.id = pub;
  sparse.created_at_us = may_2019_us + 1;
  sparse.status = false;
  sparse.set(field::frequency, 50.01f);
  sparse.set(field::ttl_rctv_enrg, 123456.789f);

  reading no_lng = full_reading(pub, 946'684'800'000'000);  // 2000-01-01 00:00:00 UTC
  no_lng.has_lng = false;
  no_lng.lng = 0;

  store_->write({stored(extremes, pub), stored(sparse, pub), stored(no_lng, pub)});

  const std::vector<reading> expected{extremes, sparse, no_lng};
  EXPECT_EQ(read_back("packet"), expected);
  EXPECT_EQ(count("quarantine"), 0);
}

TEST_F(PacketStore, WritesValuesBelowSmallestNormalAsZero) {
  const std::int32_t pub = add_pub(78);
  reading r = full_reading(pub, may_2019_us);
  r.set(field::voltage, 1.0e-40f);  // subnormal float
  r.set(field::current, -1.0e-45f);
  r.lat = 1.0e-310;  // subnormal double

  store_->write({stored(r, pub)});

  reading expected = r;
  expected.set(field::voltage, 0);
  expected.set(field::current, 0);
  expected.lat = 0;
  EXPECT_EQ(read_back("packet"), std::vector<reading>{expected});
}

TEST_F(PacketStore, KeepsCreatedAtMicrosecondsAcrossDates) {
  const std::int32_t pub = add_pub(79);
  std::mt19937_64 rng(20190518);
  // 2000-01-01 to 2099-12-31, plus the edges of a leap day and of a year.
  std::uniform_int_distribution<std::int64_t> when(946'684'800'000'000, 4'102'358'400'000'000);
  std::vector<std::int64_t> times{951'782'400'000'000, 951'868'799'999'999,
                                  978'307'199'999'999, 978'307'200'000'000};
  for (int i = 0; i < 1000; ++i) {
    times.push_back(when(rng));
  }

  std::vector<stored_packet> batch;
  std::vector<reading> expected;
  for (const auto t : times) {
    batch.push_back(stored(full_reading(pub, t), pub));
    expected.push_back(batch.back().value);
  }
  store_->write(batch);

  EXPECT_EQ(read_back("packet"), expected);
}

TEST_F(PacketStore, QuarantinedPacketsKeepTheDeviceIdInQuarantine) {
  const std::int32_t pub = add_pub(80);
  const reading known = full_reading(pub, may_2019_us);
  reading unknown = full_reading(4242, may_2019_us + 5);
  unknown.has_lat = false;
  unknown.lat = 0;

  store_->write({stored(known, pub), quarantined(unknown)});

  EXPECT_EQ(read_back("packet"), std::vector<reading>{known});
  EXPECT_EQ(read_back("quarantine"), std::vector<reading>{unknown});
}

TEST_F(PacketStore, StoresUnderResolvedPubIdNotDeviceId) {
  const std::int32_t pub = add_pub(555'000);
  const reading r = full_reading(555'000, may_2019_us);  // device sent the hash

  store_->write({stored(r, pub)});

  reading expected = r;
  expected.id = pub;
  EXPECT_EQ(read_back("packet"), std::vector<reading>{expected});
}

TEST_F(PacketStore, BatchNamingMissingPubThrowsAndCommitsNothing) {
  const std::int32_t pub = add_pub(81);
  const std::vector<stored_packet> batch{stored(full_reading(pub, may_2019_us), pub),
                                         quarantined(full_reading(9999, may_2019_us)),
                                         stored(full_reading(4242, may_2019_us), 4242)};

  EXPECT_THROW(store_->write(batch), pqxx::foreign_key_violation);

  EXPECT_EQ(count("packet"), 0);
  EXPECT_EQ(count("quarantine"), 0);
  EXPECT_TRUE(store_->connected());
  store_->write({stored(full_reading(pub, may_2019_us), pub)});
  EXPECT_EQ(count("packet"), 1);
}

TEST_F(PacketStore, FindsPubByPubIdAndByHash) {
  add_pub(1);
  const std::int32_t pub = add_pub(987'654);

  EXPECT_EQ(store_->find_pub(pub_key::pub_id, pub), pub);
  EXPECT_EQ(store_->find_pub(pub_key::hash, 987'654), pub);
  EXPECT_EQ(store_->find_pub(pub_key::pub_id, 987'654), std::nullopt);
  EXPECT_EQ(store_->find_pub(pub_key::hash, 424'242), std::nullopt);
  EXPECT_EQ(store_->find_pub(pub_key::pub_id, -1), std::nullopt);
}

TEST_F(PacketStore, WritesTenThousandRowBatch) {
  const std::int32_t pub = add_pub(82);
  std::vector<stored_packet> batch;
  for (int i = 0; i < 10'000; ++i) {
    reading r = full_reading(pub, may_2019_us + i);
    r.set(field::voltage, static_cast<float>(i));
    batch.push_back(i % 10 == 0 ? quarantined(r) : stored(r, pub));
  }

  store_->write(batch);

  EXPECT_EQ(count("packet"), 9'000);
  EXPECT_EQ(count("quarantine"), 1'000);
  pqxx::nontransaction tx(*check_);
  const auto sums = tx.exec(
      "SELECT (SELECT sum(voltage::bigint) FROM packet) + "
      "(SELECT sum(voltage::bigint) FROM quarantine)")[0][0];
  EXPECT_EQ(sums.as<long>(), 9'999L * 10'000 / 2);
}

}  // namespace
}  // namespace locomov::storage
