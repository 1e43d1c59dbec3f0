#include "runtime/run/run_id.h"

#include <ctime>
#include <random>

#include <fmt/format.h>

namespace trainrun {

std::string GenerateRunId(const std::string& experiment, WallTime now) {
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::random_device random;
  uint32_t suffix = random() & 0xffffff;
  return fmt::format("{}_{:04}{:02}{:02}_{:02}{:02}{:02}_{:06x}", experiment.substr(0, 40),
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     suffix);
}

}  // namespace trainrun
