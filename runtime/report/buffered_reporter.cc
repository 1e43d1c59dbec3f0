#include "runtime/report/buffered_reporter.h"

#include <fmt/format.h>

namespace trainrun {

void BufferedReporter::Keep(std::string_view level, std::string_view message) {
  std::lock_guard lock(mu_);
  if (done_) return;
  lines_.push_back({clock_->WallNow(), std::string(level), std::string(message)});
}

void BufferedReporter::ReplayTo(Reporter* to) {
  std::vector<Line> lines;
  {
    std::lock_guard lock(mu_);
    done_ = true;
    lines.swap(lines_);
  }
  for (const Line& line : lines) {
    std::string text = fmt::format("(at {}, before the run directory existed) {}",
                                   FormatIso8601(line.time), line.message);
    if (line.level == "warning") {
      to->Warning(text);
    } else if (line.level == "error") {
      to->Error(text);
    } else {
      to->Info(text);
    }
  }
}

}  // namespace trainrun
