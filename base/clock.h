// The clock seam. Timeouts, grace periods, heartbeats and backoff read time through
// a Clock so tests can drive them with a fake clock instead of sleeping.
#pragma once

#include <chrono>
#include <string>

namespace trainrun {

using Duration = std::chrono::steady_clock::duration;
using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for deadlines.
  virtual TimePoint Now() = 0;
  // Calendar time, for records shown to people.
  virtual WallTime WallNow() = 0;
};

// The process-wide real clock. Never null; safe from any thread.
Clock* SystemClock();

// Seconds as a double, for records and tables.
double ToSeconds(Duration d);

// A poll/epoll timeout for waiting `left`: milliseconds rounded up, so a wait never
// ends early, and 0 for a time already past.
int PollTimeoutMs(Duration left);

// "2026-11-21T23:52:26.123Z" (UTC, milliseconds).
std::string FormatIso8601(WallTime t);

// Parses what FormatIso8601 writes (the milliseconds are optional). Returns false on
// anything else.
bool ParseIso8601(const std::string& text, WallTime* out);

}  // namespace trainrun
