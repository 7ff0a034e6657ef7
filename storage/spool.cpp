#include "storage/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "common/logging.hpp"

namespace locomov::storage {
namespace {

namespace fs = std::filesystem;

// The layout documented in docs/spool.md; change both together.
constexpr char magic[8] = {'L', 'M', 'V', 'S', 'P', 'O', 'O', 'L'};
constexpr std::uint32_t format_version = 1;
constexpr std::size_t segment_header_size = 16;
constexpr std::size_t record_header_size = 8;  // length, CRC-32
constexpr std::size_t row_count_size = 4;
constexpr std::size_t row_size = 87;
constexpr std::size_t segment_name_digits = 16;
constexpr std::size_t read_chunk = 1 << 20;

enum row_flags : std::uint8_t {
  flag_quarantined = 1,
  flag_status = 2,
  flag_has_lat = 4,
  flag_has_lng = 8,
};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

template <typename T>
void put(std::uint8_t*& p, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    *p++ = static_cast<std::uint8_t>(value >> (8 * i));
  }
}

template <typename T>
T get(const std::uint8_t*& p) {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value = static_cast<T>(value | static_cast<T>(static_cast<T>(*p++) << (8 * i)));
  }
  return value;
}

template <typename Float, typename Bits>
Bits bits_of(Float f) {
  static_assert(sizeof(Float) == sizeof(Bits));
  Bits b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

template <typename Float, typename Bits>
Float float_of(Bits b) {
  Float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

void encode_row(std::uint8_t*& p, const stored_packet& packet) {
  const protocol::reading& r = packet.value;
  std::uint8_t flags = 0;
  flags |= packet.quarantined ? flag_quarantined : 0;
  flags |= r.status ? flag_status : 0;
  flags |= r.has_lat ? flag_has_lat : 0;
  flags |= r.has_lng ? flag_has_lng : 0;
  put<std::uint8_t>(p, flags);
  put<std::uint32_t>(p, static_cast<std::uint32_t>(r.id));
  put<std::uint32_t>(p, static_cast<std::uint32_t>(packet.pub_id));
  put<std::uint64_t>(p, static_cast<std::uint64_t>(r.created_at_us));
  put<std::uint16_t>(p, r.present);
  for (const float v : r.values) {
    put<std::uint32_t>(p, bits_of<float, std::uint32_t>(v));
  }
  put<std::uint64_t>(p, bits_of<double, std::uint64_t>(r.lat));
  put<std::uint64_t>(p, bits_of<double, std::uint64_t>(r.lng));
}

stored_packet decode_row(const std::uint8_t*& p) {
  stored_packet packet;
  protocol::reading& r = packet.value;
  const auto flags = get<std::uint8_t>(p);
  packet.quarantined = (flags & flag_quarantined) != 0;
  r.status = (flags & flag_status) != 0;
  r.has_lat = (flags & flag_has_lat) != 0;
  r.has_lng = (flags & flag_has_lng) != 0;
  r.id = static_cast<std::int32_t>(get<std::uint32_t>(p));
  packet.pub_id = static_cast<std::int32_t>(get<std::uint32_t>(p));
  r.created_at_us = static_cast<std::int64_t>(get<std::uint64_t>(p));
  r.present = get<std::uint16_t>(p);
  for (float& v : r.values) {
    v = float_of<float>(get<std::uint32_t>(p));
  }
  r.lat = float_of<double>(get<std::uint64_t>(p));
  r.lng = float_of<double>(get<std::uint64_t>(p));
  return packet;
}

/// CRC-32 of a record's length field followed by its payload, so that a
/// damaged length is caught as surely as damaged rows.
std::uint32_t record_crc(const std::uint8_t* length_field, const std::uint8_t* payload,
                         std::size_t payload_size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, length_field, 4);
  crc = crc32_z(crc, payload, payload_size);
  return static_cast<std::uint32_t>(crc);
}

std::vector<std::uint8_t> encode_record(const std::vector<stored_packet>& batch) {
  const std::size_t payload_size = row_count_size + batch.size() * row_size;
  std::vector<std::uint8_t> record(record_header_size + payload_size);
  std::uint8_t* p = record.data();
  put<std::uint32_t>(p, static_cast<std::uint32_t>(payload_size));
  p += 4;  // CRC, filled in below
  put<std::uint32_t>(p, static_cast<std::uint32_t>(batch.size()));
  for (const auto& packet : batch) {
    encode_row(p, packet);
  }
  assert(p == record.data() + record.size());
  std::uint8_t* crc_field = record.data() + 4;
  put<std::uint32_t>(crc_field, record_crc(record.data(), record.data() + record_header_size,
                                           payload_size));
  return record;
}

std::vector<std::uint8_t> encode_segment_header() {
  std::vector<std::uint8_t> header(segment_header_size);
  std::memcpy(header.data(), magic, sizeof magic);
  std::uint8_t* p = header.data() + sizeof magic;
  put<std::uint32_t>(p, format_version);
  put<std::uint32_t>(p, static_cast<std::uint32_t>(row_size));
  return header;
}

/// A file descriptor closed at the end of its scope.
class scoped_fd {
 public:
  explicit scoped_fd(int fd) : fd_(fd) {}
  ~scoped_fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  scoped_fd(const scoped_fd&) = delete;
  scoped_fd& operator=(const scoped_fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

void write_all(int fd, const std::uint8_t* data, std::size_t size, std::uint64_t offset,
               const std::string& what) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno(what);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
}

/// Reads the records of one segment file through a buffer of a megabyte or
/// so, since records can be as small as one row.
class record_reader {
 public:
  record_reader(int fd, std::uint64_t end) : fd_(fd), end_(end) {}

  /// Checks the record at `offset`. On success returns nullptr and sets
  /// `payload` (rows after the row count, valid until the next call),
  /// `rows` and `next`; otherwise returns why it is not a record.
  const char* next(std::uint64_t offset, const std::uint8_t*& payload, std::uint32_t& rows,
                   std::uint64_t& next) {
    if (offset + record_header_size > end_) {
      return "incomplete record header";
    }
    if (!load(offset, record_header_size)) {
      return "file ended early";
    }
    const std::uint8_t* p = at(offset);
    const std::uint8_t* length_field = p;
    const auto length = get<std::uint32_t>(p);
    const auto crc = get<std::uint32_t>(p);
    if (length < row_count_size + row_size || (length - row_count_size) % row_size != 0) {
      return "bad record length";
    }
    if (offset + record_header_size + length > end_) {
      return "record runs past the end of the file";
    }
    if (!load(offset, record_header_size + length)) {
      return "file ended early";
    }
    length_field = at(offset);
    p = length_field + record_header_size;
    if (record_crc(length_field, p, length) != crc) {
      return "checksum mismatch";
    }
    rows = get<std::uint32_t>(p);
    if (rows != (length - row_count_size) / row_size) {
      return "row count does not match length";
    }
    payload = p;
    next = offset + record_header_size + length;
    return nullptr;
  }

 private:
  const std::uint8_t* at(std::uint64_t offset) const {
    return buf_.data() + (offset - buf_start_);
  }

  /// Makes [offset, offset + size) of the file available in buf_.
  bool load(std::uint64_t offset, std::size_t size) {
    if (offset >= buf_start_ && offset + size <= buf_start_ + buf_.size()) {
      return true;
    }
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(std::max(size, read_chunk),
                                                         end_ - offset));
    buf_.resize(want);
    std::size_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(fd_, buf_.data() + got, want - got,
                                static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        // A failing disk is no reason to cut records that may be intact.
        throw_errno("read spool segment");
      }
      if (n == 0) {
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    buf_.resize(got);
    buf_start_ = offset;
    return got >= size;
  }

  int fd_;
  std::uint64_t end_;
  std::vector<std::uint8_t> buf_;
  std::uint64_t buf_start_ = 0;
};

/// The number of a segment file name ("0000000000000042.seg"), or 0.
std::uint64_t segment_number(const std::string& name) {
  if (name.size() != segment_name_digits + 4 || name.compare(segment_name_digits, 4, ".seg") != 0) {
    return 0;
  }
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < segment_name_digits; ++i) {
    if (name[i] < '0' || name[i] > '9') {
      return 0;
    }
    n = n * 10 + static_cast<std::uint64_t>(name[i] - '0');
  }
  return n;
}

void fsync_dir(int fd, const fs::path& dir) {
  if (::fsync(fd) != 0) {
    throw_errno("fsync " + dir.string());
  }
}

/// Creates `dir` if missing; a new folder's entry is made durable in its parent.
void ensure_dir(const fs::path& dir) {
  if (!fs::create_directories(dir)) {
    return;
  }
  const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
  const scoped_fd fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_errno("open " + parent.string());
  }
  fsync_dir(fd.get(), parent);
}

}  // namespace

spool::spool(options opts) : opts_(std::move(opts)) {
  if (opts_.dir.empty()) {
    throw std::invalid_argument("spool: no folder given");
  }
  if (opts_.segment_bytes <= segment_header_size + record_header_size) {
    throw std::invalid_argument("spool: segment_bytes too small");
  }
  ensure_dir(opts_.dir);
  dir_fd_ = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) {
    throw_errno("open " + opts_.dir.string());
  }
  if (::flock(dir_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    ::close(dir_fd_);
    errno = saved;
    throw_errno("spool " + opts_.dir.string() + " is in use (flock)");
  }
  try {
    open_existing();
  } catch (...) {
    ::close(dir_fd_);
    throw;
  }
  logs::storage().info("spool opened dir={} segments={} packets={} bytes={} max_bytes={}",
                       opts_.dir.string(), segments_.size(), rows_, bytes_, opts_.max_bytes);
}

spool::~spool() {
  close_active();
  ::close(dir_fd_);
}

fs::path spool::path_of(std::uint64_t number) const {
  char name[32];
  std::snprintf(name, sizeof name, "%016llu.seg", static_cast<unsigned long long>(number));
  return opts_.dir / name;
}

void spool::open_existing() {
  std::vector<std::uint64_t> numbers;
  for (const auto& entry : fs::directory_iterator(opts_.dir)) {
    const std::uint64_t n = segment_number(entry.path().filename().string());
    if (n != 0 && entry.is_regular_file()) {
      numbers.push_back(n);
    }
  }
  std::sort(numbers.begin(), numbers.end());

  for (std::size_t i = 0; i < numbers.size(); ++i) {
    segment seg;
    seg.number = numbers[i];
    next_number_ = seg.number + 1;
    scan(seg, i + 1 == numbers.size());
    if (seg.rows == 0) {
      remove_segment(seg);
      continue;
    }
    rows_ += seg.rows;
    bytes_ += seg.size;
    segments_.push_back(seg);
  }
  head_offset_ = segment_header_size;
  head_rows_ = 0;
}

void spool::scan(segment& seg, bool last) {
  const fs::path path = path_of(seg.number);
  const scoped_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw_errno("open " + path.string());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw_errno("stat " + path.string());
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  seg.size = file_size;

  // A crash right after creating a segment leaves its header incomplete.
  std::uint8_t header[segment_header_size];
  if (file_size < segment_header_size ||
      ::pread(fd.get(), header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) {
    auto& log = logs::storage();
    log.log(last ? spdlog::level::warn : spdlog::level::err,
            "spool cut segment={} offset=0 bytes={} reason=\"incomplete segment header\"",
            seg.number, file_size);
    seg.rows = 0;
    return;
  }
  const auto expected = encode_segment_header();
  if (std::memcmp(header, expected.data(), segment_header_size) != 0) {
    throw std::runtime_error("spool: " + path.string() +
                             " is not a segment of spool format version 1");
  }

  record_reader reader(fd.get(), file_size);
  std::uint64_t offset = segment_header_size;
  while (offset < file_size) {
    const std::uint8_t* payload = nullptr;
    std::uint32_t rows = 0;
    std::uint64_t next = 0;
    if (const char* reason = reader.next(offset, payload, rows, next)) {
      cut(seg, offset, seg.rows, last, reason);
      return;
    }
    seg.rows += rows;
    offset = next;
  }
}

void spool::cut(segment& seg, std::uint64_t offset, std::uint64_t rows_kept, bool expected,
                const char* reason) {
  const fs::path path = path_of(seg.number);
  logs::storage().log(expected ? spdlog::level::warn : spdlog::level::err,
                      "spool cut segment={} offset={} bytes={} reason=\"{}\"", seg.number,
                      offset, seg.size - offset, reason);
  const scoped_fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0 || ::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0 ||
      ::fsync(fd.get()) != 0) {
    throw_errno("truncate " + path.string());
  }
  seg.size = offset;
  seg.rows = rows_kept;
}

void spool::start_segment() {
  segment seg;
  seg.number = next_number_;
  const fs::path path = path_of(seg.number);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    throw_errno("create " + path.string());
  }
  try {
    const auto header = encode_segment_header();
    write_all(fd, header.data(), header.size(), 0, "write " + path.string());
    if (::fdatasync(fd) != 0) {
      throw_errno("fdatasync " + path.string());
    }
    fsync_dir(dir_fd_, opts_.dir);
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  ++next_number_;
  seg.size = segment_header_size;
  active_fd_ = fd;
  bytes_ += seg.size;
  if (segments_.empty()) {
    head_offset_ = segment_header_size;
    head_rows_ = 0;
  }
  segments_.push_back(seg);
}

void spool::close_active() {
  if (active_fd_ >= 0) {
    ::close(active_fd_);
    active_fd_ = -1;
  }
}

void spool::remove_segment(const segment& seg) {
  const fs::path path = path_of(seg.number);
  // Not made durable with an fsync of the folder: a segment back after a
  // crash is read again, and its packets are duplicates by then.
  if (::unlink(path.c_str()) != 0) {
    logs::storage().error("spool segment not removed segment={} reason=\"{}\"", seg.number,
                          std::strerror(errno));
  }
}

bool spool::append(const std::vector<stored_packet>& batch) {
  if (batch.empty()) {
    return true;
  }
  const std::vector<std::uint8_t> record = encode_record(batch);

  const std::lock_guard<std::mutex> lock(mutex_);
  const bool rotate = active_fd_ < 0 || (segments_.back().size + record.size() >
                                             opts_.segment_bytes &&
                                         segments_.back().rows > 0);
  const std::uint64_t need = record.size() + (rotate ? segment_header_size : 0);
  if (bytes_ + need > opts_.max_bytes) {
    return false;
  }
  if (rotate) {
    close_active();
    start_segment();
  }

  segment& seg = segments_.back();
  const fs::path path = path_of(seg.number);
  try {
    write_all(active_fd_, record.data(), record.size(), seg.size, "write " + path.string());
    if (::fdatasync(active_fd_) != 0) {
      throw_errno("fdatasync " + path.string());
    }
  } catch (...) {
    // Whether any of it reached the disk is unknown after a failed
    // fdatasync; cut it off, and start the next append on a new file.
    if (::ftruncate(active_fd_, static_cast<off_t>(seg.size)) != 0) {
      logs::storage().error("spool segment not truncated after a failed append segment={}",
                            seg.number);
    }
    close_active();
    throw;
  }
  seg.size += record.size();
  seg.rows += batch.size();
  rows_ += batch.size();
  bytes_ += record.size();
  return true;
}

spool_batch spool::read(std::size_t max_rows) {
  const std::lock_guard<std::mutex> lock(mutex_);
  spool_batch out;
  if (segments_.empty()) {
    return out;
  }
  out.mark.from_segment = segments_.front().number;
  out.mark.from_offset = head_offset_;

  std::size_t index = 0;
  std::uint64_t offset = head_offset_;
  std::uint64_t segment_rows = head_rows_;
  while (out.packets.size() < max_rows || out.packets.empty()) {
    segment& seg = segments_[index];
    if (offset >= seg.size) {
      if (index + 1 == segments_.size()) {
        break;
      }
      ++index;
      offset = segment_header_size;
      segment_rows = 0;
      continue;
    }

    const fs::path path = path_of(seg.number);
    const scoped_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      throw_errno("open " + path.string());
    }
    record_reader reader(fd.get(), seg.size);
    while (offset < seg.size && (out.packets.size() < max_rows || out.packets.empty())) {
      const std::uint8_t* payload = nullptr;
      std::uint32_t rows = 0;
      std::uint64_t next = 0;
      if (const char* reason = reader.next(offset, payload, rows, next)) {
        const std::uint64_t size_before = seg.size;
        const std::uint64_t rows_before = seg.rows;
        cut(seg, offset, segment_rows, false, reason);
        bytes_ -= size_before - seg.size;
        rows_ -= rows_before - seg.rows;
        break;
      }
      if (!out.packets.empty() && out.packets.size() + rows > max_rows) {
        break;
      }
      for (std::uint32_t i = 0; i < rows; ++i) {
        out.packets.push_back(decode_row(payload));
      }
      offset = next;
      segment_rows += rows;
    }
    if (offset < seg.size) {
      break;  // the next record does not fit
    }
  }

  out.mark.segment = segments_[index].number;
  out.mark.offset = offset;
  out.mark.segment_rows = segment_rows;
  out.mark.rows = out.packets.size();
  return out;
}

void spool::consume(const spool_mark& mark) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (segments_.empty() || mark.from_segment != segments_.front().number ||
      mark.from_offset != head_offset_) {
    if (mark.rows == 0 && mark.segment == 0) {
      return;  // a read of an empty spool
    }
    throw std::logic_error("spool: consume of a mark that does not start at the head");
  }

  while (segments_.front().number < mark.segment) {
    const segment& done = segments_.front();
    if (segments_.size() == 1) {
      throw std::logic_error("spool: consume of a mark past the last segment");
    }
    remove_segment(done);
    bytes_ -= done.size;
    segments_.pop_front();
  }
  head_offset_ = mark.offset;
  head_rows_ = mark.segment_rows;
  rows_ -= mark.rows;

  // A wholly consumed segment goes, even the one being appended to: the
  // next append starts a new one.
  while (!segments_.empty() && head_offset_ >= segments_.front().size) {
    const bool active = segments_.size() == 1 && active_fd_ >= 0;
    if (active) {
      close_active();
    }
    remove_segment(segments_.front());
    bytes_ -= segments_.front().size;
    segments_.pop_front();
    head_offset_ = segment_header_size;
    head_rows_ = 0;
  }
}

std::uint64_t spool::rows() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return rows_;
}

std::uint64_t spool::bytes() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

std::size_t spool::segments() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return segments_.size();
}

}  // namespace locomov::storage
