#include "storage/packet_store.hpp"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <random>
#include <string>
#include <thread>
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
  const auto result = store_->write({});
  EXPECT_EQ(result.packets + result.quarantined + result.duplicates, 0u);
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

TEST_F(PacketStore, BatchNamingMissingPubQuarantinesThoseUnderTheDeviceId) {
  const std::int32_t pub = add_pub(81);
  const reading known = full_reading(pub, may_2019_us);
  const reading unknown = full_reading(9999, may_2019_us);
  const reading missing = full_reading(4242, may_2019_us + 1);

  const auto result =
      store_->write({stored(known, pub), quarantined(unknown), stored(missing, 4242)});

  EXPECT_EQ(result.packets, 1u);
  EXPECT_EQ(result.quarantined, 2u);
  EXPECT_EQ(result.duplicates, 0u);
  EXPECT_EQ(result.vanished_pub, 1u);
  EXPECT_EQ(read_back("packet"), std::vector<reading>{known});
  EXPECT_EQ(read_back("quarantine"), (std::vector<reading>{unknown, missing}));
}

TEST_F(PacketStore, PacketsOfADeletedPubGoToQuarantineUnderTheDeviceId) {
  const std::int32_t kept = add_pub(555'001);
  const std::int32_t deleted = add_pub(555'002);
  pqxx::nontransaction(*check_).exec_params0("DELETE FROM pub WHERE pub_id = $1", deleted);
  // Under pub_key::hash the device sent the hash, its pub actor resolved it.
  const reading of_kept = full_reading(555'001, may_2019_us);
  const reading of_deleted = full_reading(555'002, may_2019_us);

  const auto result = store_->write({stored(of_kept, kept), stored(of_deleted, deleted)});

  EXPECT_EQ(result.packets, 1u);
  EXPECT_EQ(result.quarantined, 1u);
  EXPECT_EQ(result.vanished_pub, 1u);
  reading expected_packet = of_kept;
  expected_packet.id = kept;
  EXPECT_EQ(read_back("packet"), std::vector<reading>{expected_packet});
  EXPECT_EQ(read_back("quarantine"), std::vector<reading>{of_deleted});
}

TEST_F(PacketStore, SameBatchWrittenTwiceStoresOneRowPerPacket) {
  const std::int32_t pub = add_pub(83);
  const std::vector<stored_packet> batch{stored(full_reading(pub, may_2019_us), pub),
                                         stored(full_reading(pub, may_2019_us + 1), pub),
                                         quarantined(full_reading(9999, may_2019_us))};

  const auto first = store_->write(batch);
  // A retry after a commit of unknown outcome runs on a new connection.
  packet_store retry(conninfo_);
  const auto second = retry.write(batch);
  const auto third = store_->write(batch);

  EXPECT_EQ(first.packets, 2u);
  EXPECT_EQ(first.quarantined, 1u);
  EXPECT_EQ(first.duplicates, 0u);
  for (const auto& again : {second, third}) {
    EXPECT_EQ(again.packets, 0u);
    EXPECT_EQ(again.quarantined, 0u);
    EXPECT_EQ(again.duplicates, 3u);
  }
  EXPECT_EQ(count("packet"), 2);
  EXPECT_EQ(count("quarantine"), 1);
}

TEST_F(PacketStore, BatchMixingStoredAndNewPacketsStoresTheNewInOrder) {
  const std::int32_t pub = add_pub(89);
  const reading first = full_reading(pub, may_2019_us);
  const reading second = full_reading(pub, may_2019_us + 1);
  const reading third = full_reading(pub, may_2019_us + 2);
  const reading fourth = full_reading(pub, may_2019_us + 3);
  store_->write({stored(second, pub)});

  const auto result = store_->write(
      {stored(first, pub), stored(second, pub), stored(third, pub), stored(fourth, pub)});

  EXPECT_EQ(result.packets, 3u);
  EXPECT_EQ(result.duplicates, 1u);
  EXPECT_EQ(read_back("packet"), (std::vector<reading>{second, first, third, fourth}));
}

TEST_F(PacketStore, DuplicatesInsideOneBatchCollapseToOne) {
  const std::int32_t pub = add_pub(84);
  const reading r = full_reading(pub, may_2019_us);
  reading sparse;
  sparse.id = 9999;
  sparse.created_at_us = may_2019_us;
  sparse.set(field::voltage, 230);

  const auto result = store_->write({stored(r, pub), stored(r, pub), quarantined(sparse),
                                     stored(r, pub), quarantined(sparse)});

  EXPECT_EQ(result.packets, 1u);
  EXPECT_EQ(result.quarantined, 1u);
  EXPECT_EQ(result.duplicates, 3u);
  EXPECT_EQ(read_back("packet"), std::vector<reading>{r});
  EXPECT_EQ(read_back("quarantine"), std::vector<reading>{sparse});
}

TEST_F(PacketStore, PacketsDifferingInOneReadingAreAllKept) {
  const std::int32_t pub = add_pub(85);
  const reading base = full_reading(pub, may_2019_us);
  std::vector<reading> variants{base};
  for (std::size_t i = 0; i < reading_count; ++i) {
    const auto f = static_cast<field>(i);
    reading changed = base;
    changed.set(f, base.get(f) + 1);
    variants.push_back(changed);
    reading absent = base;
    absent.clear(f);
    variants.push_back(absent);
  }
  reading other_status = base;
  other_status.status = !base.status;
  variants.push_back(other_status);
  reading no_lat = base;
  no_lat.has_lat = false;
  no_lat.lat = 0;
  variants.push_back(no_lat);
  reading other_lng = base;
  other_lng.lng = std::nextafter(base.lng, 0.0);
  variants.push_back(other_lng);
  reading other_time = base;
  other_time.created_at_us += 1;
  variants.push_back(other_time);

  std::vector<stored_packet> batch;
  for (const auto& v : variants) {
    batch.push_back(stored(v, pub));
  }
  // The base stored first makes the batch take the staging path, whose
  // ON CONFLICT compares every column as the unique key does.
  store_->write({stored(base, pub)});
  const auto result = store_->write(batch);

  EXPECT_EQ(result.packets, variants.size() - 1);
  EXPECT_EQ(result.duplicates, 1u);
  EXPECT_EQ(read_back("packet"), variants);

  // The same variants into an empty quarantine take the plain COPY path.
  std::vector<stored_packet> unknown;
  for (const auto& v : variants) {
    unknown.push_back(quarantined(v));
  }
  EXPECT_EQ(store_->write(unknown).quarantined, variants.size());
  EXPECT_EQ(read_back("quarantine"), variants);
}

TEST_F(PacketStore, SameReadingFromTwoPubsIsKeptForEach) {
  const std::int32_t first = add_pub(86);
  const std::int32_t second = add_pub(87);
  reading r = full_reading(first, may_2019_us);
  reading s = r;
  s.id = second;

  const auto result = store_->write({stored(r, first), stored(s, second)});

  EXPECT_EQ(result.packets, 2u);
  EXPECT_EQ(read_back("packet"), (std::vector<reading>{r, s}));
}

TEST_F(PacketStore, ConcurrentWritersOfTheSameBatchStoreItOnce) {
  const std::int32_t pub = add_pub(88);
  std::vector<stored_packet> batch;
  for (int i = 0; i < 2'000; ++i) {
    batch.push_back(stored(full_reading(pub, may_2019_us + i), pub));
  }

  constexpr int writers = 3;
  std::vector<write_result> results(writers);
  std::vector<std::string> errors(writers);
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      try {
        packet_store store(conninfo_);
        results[w] = store.write(batch);
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  std::size_t inserted = 0;
  std::size_t duplicates = 0;
  for (int w = 0; w < writers; ++w) {
    EXPECT_EQ(errors[w], "");
    inserted += results[w].packets;
    duplicates += results[w].duplicates;
  }
  EXPECT_EQ(inserted, batch.size());
  EXPECT_EQ(duplicates, batch.size() * (writers - 1));
  EXPECT_EQ(count("packet"), static_cast<long>(batch.size()));
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

  const auto result = store_->write(batch);

  EXPECT_EQ(result.packets, 9'000u);
  EXPECT_EQ(result.quarantined, 1'000u);
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
