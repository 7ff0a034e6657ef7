#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <vector>

#include "storage/packet_store.hpp"

namespace locomov::storage {

/// Where a spool::read() ended; hand it back to spool::consume() once the
/// packets read are committed. Opaque to callers.
struct spool_mark {
  std::uint64_t from_segment = 0;  ///< the head when the read started
  std::uint64_t from_offset = 0;
  std::uint64_t segment = 0;       ///< where the first unread record starts
  std::uint64_t offset = 0;
  std::uint64_t segment_rows = 0;  ///< rows of `segment` before `offset`
  std::uint64_t rows = 0;          ///< rows the read returned
};

/// What spool::read() returns: the oldest packets, in append order.
struct spool_batch {
  std::vector<stored_packet> packets;
  spool_mark mark;
};

/// A durable queue of packet batches on local disk, for while the database
/// is unreachable: a batch is acknowledged to its devices once append()
/// returned true, and drained into the database later. Files are numbered
/// segments under one folder, every record framed with its length and a
/// CRC-32, so that a write torn by a crash is found and cut at the next
/// open; the format is in docs/spool.md.
///
/// Delivery is at least once: records read and committed but not yet
/// consumed when the process dies are read again after a restart, and a
/// segment is removed only once wholly consumed. Together with
/// packet_store's unique keys, which turn the repeat into duplicates, each
/// packet is stored once.
///
/// Thread-safe: writers append from any thread; one drainer reads and
/// consumes. One mutex guards everything, held across each append's
/// fdatasync, so appends from several writers take turns at the disk.
/// One spool per folder: the constructor locks the folder (flock) against
/// other processes and other spool objects.
class spool {
 public:
  struct options {
    std::filesystem::path dir;                ///< created if missing; e.g. state-dir/spool
    std::uint64_t max_bytes = 1ull << 30;     ///< bound on the segment files' total size
    std::uint64_t segment_bytes = 16ull << 20;  ///< a segment rotates before growing past this
  };

  /// Opens the folder, scanning every segment: a torn or corrupt tail is
  /// cut off (and logged), empty segments are removed. Throws
  /// std::system_error when the folder cannot be used or is locked,
  /// std::runtime_error on a file that is not a segment of this format,
  /// std::invalid_argument on bad options.
  explicit spool(options opts);
  ~spool();

  spool(const spool&) = delete;
  spool& operator=(const spool&) = delete;

  /// Appends the batch as one record and makes it durable (fdatasync, and
  /// fsync of the folder when it starts a segment) before returning true.
  /// Returns false, writing nothing, when the spool would grow past
  /// max_bytes. An empty batch writes nothing and returns true. Throws
  /// std::system_error when the disk fails; the batch is then not spooled.
  bool append(const std::vector<stored_packet>& batch);

  /// The oldest records not yet consumed, whole, as many as fit in
  /// `max_rows` rows; at least one record (which may hold more rows) when
  /// any is there. Removes nothing: reading again returns the same rows. A
  /// record found corrupt here is cut with what follows it in its segment,
  /// as at open, and logged. Throws std::system_error when a segment cannot
  /// be read.
  spool_batch read(std::size_t max_rows);

  /// Marks everything up to `mark` consumed, once the caller has committed
  /// it; removes the segments wholly consumed. `mark` must come from the
  /// last read() since the previous consume(); throws std::logic_error
  /// otherwise.
  void consume(const spool_mark& mark);

  /// Rows appended and not consumed, for metrics.
  std::uint64_t rows() const;

  /// Size of the segment files on disk, consumed records included until
  /// their segment is removed; what max_bytes bounds.
  std::uint64_t bytes() const;

  /// Segment files on disk.
  std::size_t segments() const;

  const options& settings() const { return opts_; }

 private:
  struct segment {
    std::uint64_t number = 0;
    std::uint64_t size = 0;  ///< bytes of the file that hold valid records
    std::uint64_t rows = 0;
  };

  void open_existing();
  void scan(segment& seg, bool last);
  void cut(segment& seg, std::uint64_t offset, std::uint64_t rows_kept, bool expected,
           const char* reason);
  void start_segment();
  void close_active();
  void remove_segment(const segment& seg);
  std::filesystem::path path_of(std::uint64_t number) const;

  options opts_;
  int dir_fd_ = -1;
  mutable std::mutex mutex_;
  std::deque<segment> segments_;
  int active_fd_ = -1;  ///< open for appends: the last segment, started by this object
  std::uint64_t head_offset_ = 0;  ///< first unconsumed byte of segments_.front()
  std::uint64_t head_rows_ = 0;    ///< rows of segments_.front() before head_offset_
  std::uint64_t rows_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t next_number_ = 1;
};

}  // namespace locomov::storage
