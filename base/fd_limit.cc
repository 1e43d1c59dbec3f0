#include "base/fd_limit.h"

#include <sys/resource.h>

#include <cerrno>
#include <fstream>

namespace trainrun {
namespace {

// setrlimit refuses a NOFILE limit above fs.nr_open, RLIM_INFINITY included.
uint64_t NrOpen() {
  std::ifstream in("/proc/sys/fs/nr_open");
  uint64_t value = 0;
  if (in >> value && value > 0) return value;
  return 1 << 20;  // the kernel's default
}

}  // namespace

Result<FdLimit> RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoStatus(errno, "getrlimit(RLIMIT_NOFILE)");
  FdLimit result;
  result.before = limit.rlim_cur;
  result.hard = limit.rlim_max == RLIM_INFINITY ? NrOpen() : limit.rlim_max;
  result.soft = result.before;
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= result.hard) return result;
  limit.rlim_cur = result.hard;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoStatus(errno, "setrlimit(RLIMIT_NOFILE)");
  result.soft = result.hard;
  return result;
}

uint64_t SoftFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return limit.rlim_cur;
}

}  // namespace trainrun
