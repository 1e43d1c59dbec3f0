// The open-file limit (RLIMIT_NOFILE): raised once at start, read by what sizes
// itself by it (the control server's cap on unauthenticated connections, the
// check that a node's ranks fit).
//
// Many systems start processes with a soft limit of 1024 and a far higher hard
// limit; a process may raise its own soft limit up to the hard one. trainrun
// uses poll/epoll only (never select), so descriptors past 1024 are safe.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace trainrun {

struct FdLimit {
  uint64_t before = 0;  // the soft limit trainrun was started with
  uint64_t soft = 0;    // the soft limit now
  uint64_t hard = 0;    // the hard limit (an unlimited one as the kernel's nr_open)
};

// Raises this process's soft RLIMIT_NOFILE to its hard limit (to fs.nr_open when
// the hard limit is unlimited). Call once, early in main, before threads start;
// children inherit the raised limit. On success, the limits before and after. On
// failure (getrlimit/setrlimit refused), an error naming the call and errno; the
// limit is then unchanged.
Result<FdLimit> RaiseFdLimit();

// This process's soft RLIMIT_NOFILE now (RLIM_INFINITY as UINT64_MAX). Any thread.
uint64_t SoftFdLimit();

}  // namespace trainrun
