// A clock that only moves when a test (or a fake that simulates waiting) says so.
#pragma once

#include "base/clock.h"

namespace trainrun::testing {

class FakeClock : public Clock {
 public:
  TimePoint Now() override { return now_; }
  WallTime WallNow() override { return wall_start_ + (now_ - TimePoint{}); }
  void Advance(Duration d) { now_ += d; }
  void AdvanceTo(TimePoint t) {
    if (t > now_) now_ = t;
  }
  // Time since the fake epoch, for assertions.
  Duration Elapsed() const { return now_ - TimePoint{}; }

 private:
  TimePoint now_{};
  WallTime wall_start_ = WallTime(std::chrono::seconds(1'800'000'000));
};

}  // namespace trainrun::testing
