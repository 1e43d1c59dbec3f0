// Reporter: how the runtime tells people and machines what is happening.
//
// The runtime never prints. It calls a Reporter; the launcher picks the terminal,
// JSON-lines or quiet implementation, and the system log is one more Reporter, so
// everything the console says also lands in system_logs/. Calls may come from any
// thread; implementations serialise.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/exit_status.h"

namespace trainrun {

// The phases of a run, in order (docs/architecture.md, "One run"). The statuses
// Preparing / Running / Finalizing of README.md are these; Completed / Failed /
// Canceled are final statuses.
enum class Phase { kPreparing, kRunning, kFinalizing };
std::string_view PhaseName(Phase phase);

struct TransferProgress {
  std::string what;  // "outputs", "data mnist", ...
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;  // 0 when unknown
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  bool finished = false;
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  // A phase began; `previous_seconds` is how long the previous one took (< 0 for
  // the first phase).
  virtual void PhaseStarted(Phase phase, double previous_seconds) = 0;
  virtual void RankStarted(int rank, int pid) = 0;
  // `stopped_by_trainrun`: the rank ended after trainrun asked it to stop.
  virtual void RankExited(int rank, const ExitStatus& status, bool stopped_by_trainrun) = 0;
  virtual void Transfer(const TransferProgress& progress) = 0;
  // A decision or fact worth a line in the system log (quiet on the terminal unless
  // verbose).
  virtual void Info(std::string_view message) = 0;
  // Something every user should see: where the run is, its final status.
  virtual void Notice(std::string_view message) = 0;
  // Something the user should see and may want to act on.
  virtual void Warning(std::string_view message) = 0;
  // An error that ends the run (what main will exit with follows).
  virtual void Error(std::string_view message) = 0;
};

// Says nothing. For tests and for `--quiet`.
class QuietReporter : public Reporter {
 public:
  void PhaseStarted(Phase, double) override {}
  void RankStarted(int, int) override {}
  void RankExited(int, const ExitStatus&, bool) override {}
  void Transfer(const TransferProgress&) override {}
  void Info(std::string_view) override {}
  void Notice(std::string_view) override {}
  void Warning(std::string_view) override {}
  void Error(std::string_view) override {}
};

// Sends every call to each of its reporters, in order, with every registered secret
// value scrubbed from messages (base/redact.h ScrubSecrets). Does not own them.
class MultiReporter : public Reporter {
 public:
  void Add(Reporter* reporter) { reporters_.push_back(reporter); }
  void PhaseStarted(Phase phase, double previous_seconds) override;
  void RankStarted(int rank, int pid) override;
  void RankExited(int rank, const ExitStatus& status, bool stopped) override;
  void Transfer(const TransferProgress& progress) override;
  void Info(std::string_view message) override;
  void Notice(std::string_view message) override;
  void Warning(std::string_view message) override;
  void Error(std::string_view message) override;

 private:
  std::vector<Reporter*> reporters_;
};

// Keeps every warning it hears, so the run record can list them.
class WarningCollector : public QuietReporter {
 public:
  void Warning(std::string_view message) override;
  std::vector<std::string> warnings() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> warnings_;
};

}  // namespace trainrun
