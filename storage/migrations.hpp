#pragma once

#include <cstddef>
#include <string_view>

namespace locomov::storage {

/// One schema migration compiled into the binary from storage/migrations/.
struct migration {
  int version;            ///< from the file name's leading number; 1, 2, 3, ...
  std::string_view name;  ///< the file name without .sql
  std::string_view sql;   ///< statements run in one transaction; no BEGIN/COMMIT
};

/// Every migration of this build, in ascending version order.
extern const migration migrations[];

/// How many entries `migrations` has.
extern const std::size_t migration_count;

}  // namespace locomov::storage
