// The system log: trainrun's own account of a run (phases with timings, decisions,
// warnings, every rank start and exit), one timestamped line each, in
// system_logs/. It is a Reporter, so it hears everything the console hears and
// more.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "runtime/report/reporter.h"

namespace trainrun {

class SystemLog : public Reporter {
 public:
  // Opens `path` for appending (creating folders). Errors name the path.
  static Result<std::unique_ptr<SystemLog>> Open(const std::string& path, Clock* clock);
  ~SystemLog() override;

  void PhaseStarted(Phase phase, double previous_seconds) override;
  void RankStarted(int rank, int pid) override;
  void RankExited(int rank, const ExitStatus& status, bool stopped_by_trainrun) override;
  void Transfer(const TransferProgress& progress) override;
  void Info(std::string_view message) override;
  void Notice(std::string_view message) override;
  void Warning(std::string_view message) override;
  void Error(std::string_view message) override;

  const std::string& path() const { return path_; }

 private:
  SystemLog(int fd, std::string path, Clock* clock)
      : fd_(fd), path_(std::move(path)), clock_(clock) {}
  void Line(std::string_view level, std::string_view message);

  std::mutex mu_;
  int fd_;
  std::string path_;
  Clock* clock_;
};

}  // namespace trainrun
