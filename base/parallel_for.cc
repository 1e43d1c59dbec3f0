#include "base/parallel_for.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace trainrun {

Status ParallelFor(size_t count, int parallelism, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;
  auto worker = [&] {
    while (!failed.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= count) return;
      Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (first_error.ok()) first_error = s;
        failed = true;
      }
    }
  };
  const size_t threads =
      std::min<size_t>(static_cast<size_t>(std::max(1, parallelism)), std::max<size_t>(count, 1));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) {
    // Threads that already got through the batch (ten small files into a local
    // history) need no more of them: each costs a stack and a join.
    if (failed.load() || next.load() >= count) break;
    pool.emplace_back(worker);
  }
  worker();
  for (std::thread& t : pool) t.join();
  return first_error;
}

}  // namespace trainrun
