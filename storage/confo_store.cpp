#include "storage/confo_store.hpp"

#include <pqxx/pqxx>

#include "storage/guarded_connection.hpp"

#include <cstdio>
#include <stdexcept>

namespace locomov::storage {
namespace {

// Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)),
// taken in this order by every decision so that two never wait on each other.
constexpr int lock_email = 0x6c6d01;
constexpr int lock_hash = 0x6c6d02;
constexpr int lock_pair = 0x6c6d03;

// Times travel as microseconds since the epoch and become timestamptz in the
// server, exactly (no double rounding).
constexpr const char* micros = "('epoch'::timestamptz + $%d::bigint * interval '1 microsecond')";

std::string at(int param) {
  char buf[96];
  std::snprintf(buf, sizeof buf, micros, param);
  return buf;
}

void prepare_statements(pqxx::connection& conn) {
  conn.prepare("confo_lock_text", "SELECT pg_advisory_xact_lock($1::int, hashtext($2))");
  conn.prepare("confo_lock_int", "SELECT pg_advisory_xact_lock($1::int, $2::int)");
  conn.prepare("confo_sub", "SELECT sub_id FROM sub WHERE email = $1");
  conn.prepare("confo_pub",
               "SELECT pub_id, coalesce(creator, '') FROM pub WHERE hash = $1 FOR UPDATE");
  conn.prepare("confo_set_creator", "UPDATE pub SET creator = $2 WHERE pub_id = $1");
  conn.prepare("confo_clear_dangling_creator",
               "UPDATE pub SET creator = NULL WHERE pub_id = $1 AND creator <> '' AND "
               "NOT EXISTS (SELECT 1 FROM sub WHERE sub.email = pub.creator)");
  conn.prepare("confo_new_pub",
               "INSERT INTO pub (created_at, longitude, latitude, hash, creator) VALUES (" +
                   at(1) + ", $2, $3, $4, $5) ON CONFLICT (pub_id) DO NOTHING RETURNING pub_id");
  conn.prepare("confo_resync_pub_ids",
               "SELECT setval(pg_get_serial_sequence('pub', 'pub_id'), max(pub_id)) FROM pub");
  conn.prepare("confo_link", "INSERT INTO subpub (sub_id, pub_id) VALUES ($1, $2)");
  conn.prepare("confo_csub", "INSERT INTO csub (email) VALUES ($1) ON CONFLICT DO NOTHING");
  const std::string columns =
      " (device_name, ssid, hash, email, longitude, latitude, device_time, received_at) "
      "VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, " +
      at(7) + ", " + at(8) + ") RETURNING id";
  conn.prepare("confo_save", "INSERT INTO confo" + columns);
  conn.prepare("confo_save_conflict", "INSERT INTO cconfo" + columns);
  conn.prepare("confo_last_hash",
               "SELECT hash FROM confo WHERE device_name = $1 AND ssid = $2 "
               "ORDER BY id DESC LIMIT 1");
}

std::int64_t save(pqxx::work& tx, const protocol::confo& c, bool conflict) {
  const auto r = tx.exec_prepared(conflict ? "confo_save_conflict" : "confo_save",
                                  c.device_name, c.ssid, c.hash, c.email, c.longitude,
                                  c.latitude, c.device_time_us, c.received_at_us);
  return r[0][0].as<std::int64_t>();
}

/// Pubs inserted with explicit ids (as operators do by hand) leave pub_id's
/// sequence behind them. A taken id is skipped and the sequence moved past
/// the largest id at once, rather than burning one decision per taken id.
std::int32_t insert_pub(pqxx::work& tx, const protocol::confo& c) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto r = tx.exec_prepared("confo_new_pub", c.device_time_us, c.longitude, c.latitude,
                                    c.hash, c.email);
    if (!r.empty()) {
      return r[0][0].as<std::int32_t>();
    }
    tx.exec_prepared("confo_resync_pub_ids");
  }
  // Only a process inserting ids faster than this catches up gets here; the
  // arbiter retries the whole decision.
  throw std::runtime_error("no free pub_id after moving the sequence");
}

/// The tree of issue 3 in one transaction, committed.
confo_decision decide_in(pqxx::connection& conn, const protocol::confo& c) {
  confo_decision d;
  pqxx::work tx{conn};
  if (!c.email.empty()) {
    tx.exec_prepared("confo_lock_text", lock_email, c.email);
  }
  tx.exec_prepared("confo_lock_int", lock_hash, c.hash);
  tx.exec_prepared("confo_lock_text", lock_pair, c.device_name + '\x1f' + c.ssid);

  std::optional<std::int32_t> sub_id;
  if (!c.email.empty()) {
    const auto sub = tx.exec_prepared("confo_sub", c.email);
    if (!sub.empty()) {
      sub_id = sub[0][0].as<std::int32_t>();
    }
  }
  const auto pub = tx.exec_prepared("confo_pub", c.hash);
  const bool pub_exists = !pub.empty();
  std::string creator;
  if (pub_exists) {
    d.pub_id = pub[0][0].as<std::int32_t>();
    creator = pub[0][1].as<std::string>();
  }

  if (sub_id) {
    if (pub_exists && creator == c.email) {
      d.branch = confo_branch::sub_pub_own;
    } else if (pub_exists && !creator.empty()) {
      d.branch = confo_branch::sub_pub_conflict;
      d.conflict = true;
    } else if (pub_exists) {
      d.branch = confo_branch::sub_pub_claimed;
      tx.exec_prepared("confo_set_creator", d.pub_id, c.email);
      d.creator_changed = true;
    } else if (c.hash != 0) {
      d.branch = confo_branch::sub_new_pub;
      d.pub_id = insert_pub(tx, c);
      d.pub_created = true;
      tx.exec_prepared("confo_link", *sub_id, d.pub_id);
    } else {
      d.branch = confo_branch::sub_no_hash;
    }
  } else {
    if (!c.email.empty()) {
      tx.exec_prepared("confo_csub", c.email);
    }
    if (pub_exists) {
      d.branch = confo_branch::csub_pub;
      d.creator_changed =
          tx.exec_prepared("confo_clear_dangling_creator", d.pub_id).affected_rows() > 0;
    } else {
      d.branch = confo_branch::csub_no_pub;
    }
  }
  d.confo_id = save(tx, c, d.conflict);
  tx.commit();
  return d;
}

}  // namespace

const char* branch_name(confo_branch branch) {
  switch (branch) {
    case confo_branch::sub_pub_own:
      return "sub_pub_own";
    case confo_branch::sub_pub_conflict:
      return "sub_pub_conflict";
    case confo_branch::sub_pub_claimed:
      return "sub_pub_claimed";
    case confo_branch::sub_new_pub:
      return "sub_new_pub";
    case confo_branch::sub_no_hash:
      return "sub_no_hash";
    case confo_branch::csub_pub:
      return "csub_pub";
    case confo_branch::csub_no_pub:
      return "csub_no_pub";
  }
  return "unknown";
}

confo_store::confo_store(const std::string& conninfo, std::chrono::milliseconds timeout)
    : conn_(std::make_unique<guarded_connection>(conninfo, timeout)) {
  prepare_statements(conn_->get());
}

confo_store::~confo_store() = default;

bool confo_store::connected() const { return conn_->is_open(); }

confo_decision confo_store::decide(const protocol::confo& c) {
  confo_decision d;
  conn_->run([&] { d = decide_in(conn_->get(), c); });
  return d;
}

std::optional<std::int32_t> confo_store::last_hash(const std::string& device_name,
                                                   const std::string& ssid) {
  std::optional<std::int32_t> hash;
  conn_->run([&] {
    pqxx::read_transaction tx{conn_->get()};
    const auto r = tx.exec_prepared("confo_last_hash", device_name, ssid);
    if (!r.empty() && !r[0][0].is_null()) {
      hash = r[0][0].as<std::int32_t>();
    }
  });
  return hash;
}

}  // namespace locomov::storage
