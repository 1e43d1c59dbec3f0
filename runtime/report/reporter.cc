#include "runtime/report/reporter.h"

#include "base/redact.h"

namespace trainrun {

std::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kPreparing: return "Preparing";
    case Phase::kRunning: return "Running";
    case Phase::kFinalizing: return "Finalizing";
  }
  return "Unknown";
}

void MultiReporter::PhaseStarted(Phase phase, double previous_seconds) {
  for (Reporter* r : reporters_) r->PhaseStarted(phase, previous_seconds);
}
void MultiReporter::RankStarted(int rank, int pid) {
  for (Reporter* r : reporters_) r->RankStarted(rank, pid);
}
void MultiReporter::RankExited(int rank, const ExitStatus& status, bool stopped) {
  for (Reporter* r : reporters_) r->RankExited(rank, status, stopped);
}
void MultiReporter::Transfer(const TransferProgress& progress) {
  for (Reporter* r : reporters_) r->Transfer(progress);
}
void MultiReporter::Info(std::string_view message) {
  const std::string scrubbed = ScrubSecrets(message);
  for (Reporter* r : reporters_) r->Info(scrubbed);
}
void MultiReporter::Notice(std::string_view message) {
  const std::string scrubbed = ScrubSecrets(message);
  for (Reporter* r : reporters_) r->Notice(scrubbed);
}
void MultiReporter::Warning(std::string_view message) {
  const std::string scrubbed = ScrubSecrets(message);
  for (Reporter* r : reporters_) r->Warning(scrubbed);
}
void MultiReporter::Error(std::string_view message) {
  const std::string scrubbed = ScrubSecrets(message);
  for (Reporter* r : reporters_) r->Error(scrubbed);
}

void WarningCollector::Warning(std::string_view message) {
  std::lock_guard lock(mu_);
  warnings_.emplace_back(message);
}

std::vector<std::string> WarningCollector::warnings() const {
  std::lock_guard lock(mu_);
  return warnings_;
}

}  // namespace trainrun
