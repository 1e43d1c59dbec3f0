#include "base/clock.h"

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

namespace trainrun {
namespace {

class RealClock : public Clock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() override { return std::chrono::system_clock::now(); }
};

}  // namespace

Clock* SystemClock() {
  static RealClock clock;
  return &clock;
}

double ToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }

int PollTimeoutMs(Duration left) {
  const int64_t ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, int64_t{1} << 30));
}

std::string FormatIso8601(WallTime t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

bool ParseIso8601(const std::string& text, WallTime* out) {
  std::tm tm{};
  int millis = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return false;
  }
  std::string rest = text.substr(consumed);
  if (!rest.empty() && rest[0] == '.') {
    if (std::sscanf(rest.c_str(), ".%3d", &millis) != 1) return false;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t secs = timegm(&tm);
  *out = WallTime(std::chrono::seconds(secs)) + std::chrono::milliseconds(millis);
  return true;
}

}  // namespace trainrun
