// A clock that only moves when a test (or a fake that simulates waiting) says so.
// Thread-safe: code under test may read it from its own threads (the control
// plane's loops) while the test advances it.
#pragma once

#include <mutex>

#include "base/clock.h"

namespace trainrun::testing {

class FakeClock : public Clock {
 public:
  TimePoint Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }
  WallTime WallNow() override {
    std::lock_guard lock(mu_);
    return wall_start_ + (now_ - TimePoint{});
  }
  void Advance(Duration d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }
  void AdvanceTo(TimePoint t) {
    std::lock_guard lock(mu_);
    if (t > now_) now_ = t;
  }
  // Time since the fake epoch, for assertions.
  Duration Elapsed() const {
    std::lock_guard lock(mu_);
    return now_ - TimePoint{};
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_{};
  const WallTime wall_start_ = WallTime(std::chrono::seconds(1'800'000'000));
};

}  // namespace trainrun::testing
