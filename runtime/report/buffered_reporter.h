// Keeps what is reported before the system log exists (cluster discovery, the
// rendezvous, refused peers: a multi-node run's directory is made only once the
// rendezvous named the run) and replays it into the system log when it opens.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "runtime/report/reporter.h"

namespace trainrun {

class BufferedReporter : public QuietReporter {
 public:
  explicit BufferedReporter(Clock* clock) : clock_(clock) {}

  void Info(std::string_view message) override { Keep("info", message); }
  void Notice(std::string_view message) override { Keep("notice", message); }
  void Warning(std::string_view message) override { Keep("warning", message); }
  void Error(std::string_view message) override { Keep("error", message); }

  // Sends every kept line to `to` (as Info, Warning or Error, with the time it
  // was reported) and keeps nothing from then on.
  void ReplayTo(Reporter* to);

 private:
  struct Line {
    WallTime time;
    std::string level;
    std::string message;
  };
  void Keep(std::string_view level, std::string_view message);

  Clock* clock_;
  std::mutex mu_;
  std::vector<Line> lines_;  // guarded by mu_
  bool done_ = false;        // guarded by mu_
};

}  // namespace trainrun
