#include "storage/packet_store.hpp"

#include <cassert>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/tablewriter>
#include <pqxx/transaction>

namespace locomov::storage {

namespace {

using protocol::field;
using protocol::reading;
using protocol::reading_count;
using protocol::reading_fields;

constexpr const char* find_by_pub_id = "locomov_find_pub_by_pub_id";
constexpr const char* find_by_hash = "locomov_find_pub_by_hash";

/// Rough COPY text length of one row, to size the buffers once per batch.
constexpr std::size_t row_size_estimate = 256;

/// Columns of `packet` and `quarantine` that write() fills, in table order:
/// `protected` sits between frequency and current there.
const std::vector<std::string>& copy_columns() {
  static const std::vector<std::string> columns = [] {
    std::vector<std::string> c{"pub_id", "created_at"};
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

/// One line of COPY text format in the order of copy_columns().
void append_row(std::string& out, std::int32_t pub_id, const reading& r) {
  append_number(out, pub_id);
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

/// Sends all rows with one COPY and a single libpqxx call: 6.4's
/// write_raw_line hands the whole buffer to one PQputCopyData, and COPY
/// does not care where the protocol's data messages split lines. stream_to
/// in 6.4 has no public raw-line entry, and its per-field conversion and
/// escaping costs more than formatting the text here.
void copy_rows(pqxx::work& tx, const char* table, const std::string& rows) {
  if (rows.empty()) {
    return;
  }
  const auto& columns = copy_columns();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter writer(tx, table, columns.begin(), columns.end());
#pragma GCC diagnostic pop
  writer.write_raw_line(rows);
  writer.complete();
}

}  // namespace

packet_store::packet_store(const std::string& conninfo)
    : conn_(std::make_unique<pqxx::connection>(conninfo)) {
  conn_->prepare(find_by_pub_id, "SELECT pub_id FROM pub WHERE pub_id = $1");
  conn_->prepare(find_by_hash, "SELECT pub_id FROM pub WHERE hash = $1");
}

packet_store::~packet_store() = default;

void packet_store::write(const std::vector<stored_packet>& batch) {
  if (batch.empty()) {
    return;
  }

  packet_rows_.clear();
  quarantine_rows_.clear();
  packet_rows_.reserve(batch.size() * row_size_estimate);
  for (const auto& p : batch) {
    if (p.quarantined) {
      append_row(quarantine_rows_, p.value.id, p.value);
    } else {
      append_row(packet_rows_, p.pub_id, p.value);
    }
  }

  pqxx::work tx(*conn_);
  copy_rows(tx, "packet", packet_rows_);
  copy_rows(tx, "quarantine", quarantine_rows_);
  tx.commit();
}

std::optional<std::int32_t> packet_store::find_pub(pub_key key, std::int32_t id) {
  pqxx::nontransaction tx(*conn_);
  const auto rows = tx.exec_prepared(key == pub_key::hash ? find_by_hash : find_by_pub_id, id);
  if (rows.empty()) {
    return std::nullopt;
  }
  return rows[0][0].as<std::int32_t>();
}

bool packet_store::connected() const {
  return conn_ && conn_->is_open();
}

}  // namespace locomov::storage
