#include "storage/packet_store.hpp"

#include <cassert>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/tablewriter>
#include <pqxx/transaction>
#include <unordered_map>

#include "storage/guarded_connection.hpp"

namespace locomov::storage {

namespace {

using protocol::field;
using protocol::reading;
using protocol::reading_count;
using protocol::reading_fields;

constexpr const char* find_by_pub_id = "locomov_find_pub_by_pub_id";
constexpr const char* find_by_hash = "locomov_find_pub_by_hash";
constexpr const char* staging_table = "locomov_staging";
constexpr const char* move_staged = "locomov_move_staged";

/// Rough COPY text length of one row, to size the buffer once per batch.
constexpr std::size_t row_size_estimate = 256;

/// The reading columns of `packet` and `quarantine`, in table order:
/// `protected` sits between frequency and current there. The unique keys
/// of migration 0002 cover exactly these and pub_id.
const std::vector<std::string>& reading_columns() {
  static const std::vector<std::string> columns = [] {
    std::vector<std::string> c{"created_at"};
    for (std::size_t i = 0; i < reading_count; ++i) {
      if (i == static_cast<std::size_t>(field::current)) {
        c.emplace_back("protected");
      }
      c.emplace_back(reading_fields[i].column);
    }
    c.emplace_back("latitude");
    c.emplace_back("longitude");
    return c;
  }();
  return columns;
}

/// Columns of the staging table, in the order append_staging_row() writes them:
/// `seq` keeps the batch's order in the ids, `device_id` is what the device
/// sent, `pub_id` the resolved pub (NULL for packets meant for quarantine).
const std::vector<std::string>& staging_columns() {
  static const std::vector<std::string> columns = [] {
    std::vector<std::string> c{"seq", "device_id", "pub_id"};
    const auto& readings = reading_columns();
    c.insert(c.end(), readings.begin(), readings.end());
    return c;
  }();
  return columns;
}

/// Columns of `packet` and `quarantine` that write() fills.
const std::vector<std::string>& table_columns() {
  static const std::vector<std::string> columns = [] {
    std::vector<std::string> c{"pub_id"};
    const auto& readings = reading_columns();
    c.insert(c.end(), readings.begin(), readings.end());
    return c;
  }();
  return columns;
}

std::string comma_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) {
      out += ", ";
    }
    out += item;
  }
  return out;
}

/// ON COMMIT DELETE ROWS empties it at every commit, so a batch never sees
/// another's rows; a rolled back COPY leaves nothing either.
std::string create_staging_sql() {
  std::string sql = std::string("CREATE TEMP TABLE ") + staging_table +
                    " (seq integer NOT NULL, device_id integer NOT NULL, pub_id integer, "
                    "created_at timestamptz NOT NULL";
  for (std::size_t i = 0; i < reading_count; ++i) {
    if (i == static_cast<std::size_t>(field::current)) {
      sql += ", protected boolean NOT NULL";
    }
    sql += ", " + std::string(reading_fields[i].column) + " real";
  }
  sql += ", latitude double precision, longitude double precision) ON COMMIT DELETE ROWS";
  return sql;
}

/// Moves the staged batch in one statement, so every part sees one snapshot.
/// live_pub locks the batch's pubs that still exist (FOR KEY SHARE, what
/// the foreign key check takes anyway), so none can vanish before the
/// commit; a pub deleted before that is not in live_pub and its packets go
/// to quarantine under the device's id instead of failing the batch on the
/// foreign key. ON CONFLICT DO NOTHING skips packets already stored and
/// repeats inside the batch.
std::string move_staged_sql() {
  const std::string readings = comma_list(reading_columns());
  const std::string from_staging = std::string(" FROM ") + staging_table;
  return "WITH live_pub AS ("
         "SELECT pub_id FROM pub WHERE pub_id IN (SELECT pub_id" + from_staging +
         ") FOR KEY SHARE), "
         "to_packet AS ("
         "INSERT INTO packet (pub_id, " + readings + ") SELECT pub_id, " + readings +
         from_staging + " WHERE pub_id IN (SELECT pub_id FROM live_pub) ORDER BY seq "
         "ON CONFLICT DO NOTHING RETURNING 1), "
         "to_quarantine AS ("
         "INSERT INTO quarantine (pub_id, " + readings + ") SELECT device_id, " + readings +
         from_staging + " WHERE pub_id IS NULL OR pub_id NOT IN (SELECT pub_id FROM live_pub) "
         "ORDER BY seq ON CONFLICT DO NOTHING RETURNING 1) "
         "SELECT (SELECT count(*) FROM to_packet), (SELECT count(*) FROM to_quarantine), "
         "(SELECT count(*)" + from_staging +
         " WHERE pub_id IS NOT NULL AND pub_id NOT IN (SELECT pub_id FROM live_pub))";
}

template <typename T>
void append_number(std::string& out, T value) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}

void append_digits(std::string& out, unsigned value, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(buf, static_cast<std::size_t>(width));
}

/// Shortest text that reads back as the same value. Values below the
/// smallest normal go as 0: PostgreSQL rejects some of them as out of range
/// and one bad value would fail the whole COPY.
template <typename T>
void append_float(std::string& out, T value, T smallest_normal) {
  assert(std::isfinite(value));
  if (std::fabs(value) < smallest_normal) {
    out += '0';
    return;
  }
  append_number(out, value);
}

/// "YYYY-MM-DD HH:MM:SS.ffffff+00", which timestamptz reads exactly.
/// Years before 1 are not representable this way; the decoder only passes
/// times from 2000 on.
void append_timestamp(std::string& out, std::int64_t us) {
  constexpr std::int64_t us_per_day = 86'400'000'000;
  std::int64_t days = us / us_per_day;
  std::int64_t rest = us % us_per_day;
  if (rest < 0) {
    rest += us_per_day;
    --days;
  }

  // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
  const std::int64_t z = days + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1'460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const auto day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const auto month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  assert(year >= 1);

  if (year > 9999) {
    append_number(out, year);
  } else {
    append_digits(out, static_cast<unsigned>(year), 4);
  }
  out += '-';
  append_digits(out, month, 2);
  out += '-';
  append_digits(out, day, 2);
  out += ' ';
  const auto secs = static_cast<unsigned>(rest / 1'000'000);
  append_digits(out, secs / 3600, 2);
  out += ':';
  append_digits(out, secs / 60 % 60, 2);
  out += ':';
  append_digits(out, secs % 60, 2);
  out += '.';
  append_digits(out, static_cast<unsigned>(rest % 1'000'000), 6);
  out += "+00";
}

/// created_at and the readings as COPY text, tab-led, in the order of
/// reading_columns(), ending the line.
void append_readings(std::string& out, const reading& r) {
  out += '\t';
  append_timestamp(out, r.created_at_us);
  for (std::size_t i = 0; i < reading_count; ++i) {
    if (i == static_cast<std::size_t>(field::current)) {
      out += r.status ? "\tt" : "\tf";
    }
    out += '\t';
    if (r.has(static_cast<field>(i))) {
      append_float(out, r.values[i], FLT_MIN);
    } else {
      out += "\\N";
    }
  }
  out += '\t';
  if (r.has_lat) {
    append_float(out, r.lat, DBL_MIN);
  } else {
    out += "\\N";
  }
  out += '\t';
  if (r.has_lng) {
    append_float(out, r.lng, DBL_MIN);
  } else {
    out += "\\N";
  }
  out += '\n';
}

/// One line of COPY text in the order of table_columns(): `packet` or
/// `quarantine` directly.
void append_table_row(std::string& out, std::int32_t pub_id, const reading& r) {
  append_number(out, pub_id);
  append_readings(out, r);
}

/// One line of COPY text in the order of staging_columns().
void append_staging_row(std::string& out, std::size_t seq, const stored_packet& p) {
  append_number(out, seq);
  out += '\t';
  append_number(out, p.value.id);
  out += '\t';
  if (p.quarantined) {
    out += "\\N";
  } else {
    append_number(out, p.pub_id);
  }
  append_readings(out, p.value);
}

/// Sends all rows with one COPY and a single libpqxx call: 6.4's
/// write_raw_line hands the whole buffer to one PQputCopyData, and COPY
/// does not care where the protocol's data messages split lines. stream_to
/// in 6.4 has no public raw-line entry, and its per-field conversion and
/// escaping costs more than formatting the text here.
void copy_rows(pqxx::work& tx, const char* table, const std::vector<std::string>& columns,
               const std::string& rows) {
  if (rows.empty()) {
    return;
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter writer(tx, table, columns.begin(), columns.end());
#pragma GCC diagnostic pop
  writer.write_raw_line(rows);
  writer.complete();
}

}  // namespace

packet_store::packet_store(const std::string& conninfo, std::chrono::milliseconds timeout)
    : conn_(std::make_unique<guarded_connection>(conninfo, timeout)) {
  conn_->get().prepare(find_by_pub_id, "SELECT pub_id FROM pub WHERE pub_id = $1");
  conn_->get().prepare(find_by_hash, "SELECT pub_id FROM pub WHERE hash = $1");
}

packet_store::~packet_store() = default;

void packet_store::prepare_staging() {
  pqxx::nontransaction tx(conn_->get());
  tx.exec0(create_staging_sql());
  conn_->get().prepare(move_staged, move_staged_sql());
  staging_ready_ = true;
}

write_result packet_store::write(const std::vector<stored_packet>& batch) {
  if (batch.empty()) {
    return {};
  }
  write_result result;
  conn_->run([&] {
    auto direct = write_direct(batch);
    result = direct ? *direct : write_staged(batch);
  });
  return result;
}

std::optional<write_result> packet_store::write_direct(const std::vector<stored_packet>& batch) {
  copy_text_.clear();
  quarantine_text_.clear();
  copy_text_.reserve(batch.size() * row_size_estimate);
  write_result result;
  for (const auto& p : batch) {
    if (p.quarantined) {
      append_table_row(quarantine_text_, p.value.id, p.value);
      ++result.quarantined;
    } else {
      append_table_row(copy_text_, p.pub_id, p.value);
      ++result.packets;
    }
  }

  // COPY inserts several rows per heap and WAL operation, which INSERT ...
  // SELECT cannot: the staging path reaches about 60 % of COPY's rows/s
  // (bench/copy_ceiling.cpp), so it is kept for the batches that need it.
  try {
    pqxx::work tx(conn_->get());
    copy_rows(tx, "packet", table_columns(), copy_text_);
    copy_rows(tx, "quarantine", table_columns(), quarantine_text_);
    tx.commit();
  } catch (const pqxx::unique_violation&) {
    return std::nullopt;
  } catch (const pqxx::foreign_key_violation&) {
    return std::nullopt;
  }
  return result;
}

write_result packet_store::write_staged(const std::vector<stored_packet>& batch) {
  if (!staging_ready_) {
    prepare_staging();
  }
  copy_text_.clear();
  copy_text_.reserve(batch.size() * row_size_estimate);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    append_staging_row(copy_text_, i, batch[i]);
  }

  pqxx::work tx(conn_->get());
  copy_rows(tx, staging_table, staging_columns(), copy_text_);
  const auto counts = tx.exec_prepared1(move_staged);
  tx.commit();

  write_result result;
  result.packets = counts[0].as<std::size_t>();
  result.quarantined = counts[1].as<std::size_t>();
  result.vanished_pub = counts[2].as<std::size_t>();
  assert(result.packets + result.quarantined <= batch.size());
  result.duplicates = batch.size() - result.packets - result.quarantined;
  return result;
}

std::optional<std::int32_t> packet_store::find_pub(pub_key key, std::int32_t id) {
  std::optional<std::int32_t> found;
  conn_->run([&] {
    pqxx::nontransaction tx(conn_->get());
    const auto rows =
        tx.exec_prepared(key == pub_key::hash ? find_by_hash : find_by_pub_id, id);
    if (!rows.empty()) {
      found = rows[0][0].as<std::int32_t>();
    }
  });
  return found;
}

void packet_store::resolve(std::vector<stored_packet>& batch) {
  std::unordered_map<std::int32_t, std::int32_t> found;  // device id -> pub_id, 0: none
  for (auto& p : batch) {
    if (p.quarantined || p.pub_id != 0) {
      continue;
    }
    auto [it, added] = found.try_emplace(p.value.id, 0);
    if (added) {
      it->second = find_pub(pub_key::hash, p.value.id).value_or(0);
    }
    p.pub_id = it->second;
    p.quarantined = it->second == 0;
  }
}

bool packet_store::connected() const { return conn_->is_open(); }

int packet_store::backend_pid() const { return conn_->backend_pid(); }

}  // namespace locomov::storage
