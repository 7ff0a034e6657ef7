#include "net/open_files.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace locomov::net {

open_files_limit raise_open_files_limit() {
  open_files_limit result;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    result.error = std::strerror(errno);
    return result;
  }
  result.was = lim.rlim_cur;
  result.hard = lim.rlim_max;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      lim = raised;
    } else {
      result.error = std::strerror(errno);
    }
  }
  result.soft = lim.rlim_cur;
  return result;
}

}  // namespace locomov::net
