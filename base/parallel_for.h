// Running independent pieces of work (files, parts of a file) on a few threads.
#pragma once

#include <cstddef>
#include <functional>

#include "base/status.h"

namespace trainrun {

// Calls `fn(i)` once for every i in [0, count), on up to `parallelism` threads (the
// caller's included; no thread is started once every index has been taken), and
// returns when all have returned. The first error stops
// new indices from starting and is what ParallelFor returns.
Status ParallelFor(size_t count, int parallelism, const std::function<Status(size_t)>& fn);

}  // namespace trainrun
