// ParallelFor with real threads: every index once, on no more threads than asked, and the
// first error stops the rest.
#include "base/parallel_for.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(ParallelForTest, RunsEveryIndexOnceOnAtMostParallelismThreads) {
  std::mutex mu;
  std::vector<int> calls(1000, 0);
  std::set<std::thread::id> threads;
  Status s = ParallelFor(calls.size(), 4, [&](size_t i) {
    std::lock_guard lock(mu);
    ++calls[i];
    threads.insert(std::this_thread::get_id());
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  for (size_t i = 0; i < calls.size(); ++i) ASSERT_EQ(calls[i], 1) << "index " << i;
  EXPECT_LE(threads.size(), 4u);
}

// Slow pieces of work still get every thread asked for, all at once.
TEST(ParallelForTest, SlowWorkRunsOnParallelismThreadsAtOnce) {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, most = 0;
  Status s = ParallelFor(8, 4, [&](size_t) {
    std::unique_lock lock(mu);
    most = std::max(most, ++running);
    cv.notify_all();
    // Held until four run together (or 5 s, so that a failure cannot hang).
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return most >= 4; });
    --running;
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(most, 4);
}

TEST(ParallelForTest, TheFirstErrorStopsNewIndicesAndIsReturned) {
  std::atomic<int> started{0};
  Status s = ParallelFor(1000, 1, [&](size_t i) {
    ++started;
    return i == 3 ? IoError("index 3 failed") : Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "index 3 failed");
  EXPECT_EQ(started.load(), 4) << "one thread: nothing starts after the failure";
}

TEST(ParallelForTest, NothingToDoIsOk) {
  EXPECT_TRUE(ParallelFor(0, 8, [](size_t) { return IoError("never called"); }).ok());
}

}  // namespace
}  // namespace trainrun
