// The Reporter people see: "trainrun: ..." lines on stderr, colours and a live
// transfer line only on a terminal, Info lines only with --verbose.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "runtime/console.h"
#include "runtime/reporter.h"

namespace trainrun {

class TerminalReporter : public Reporter {
 public:
  // Writes through `console` (not owned).
  TerminalReporter(Console* console, bool verbose);

  void PhaseStarted(Phase phase, double previous_seconds) override;
  void RankStarted(int rank, int pid) override;
  void RankExited(int rank, const ExitStatus& status, bool stopped_by_trainrun) override;
  void Transfer(const TransferProgress& progress) override;
  void Info(std::string_view message) override;
  void Notice(std::string_view message) override;
  void Warning(std::string_view message) override;
  void Error(std::string_view message) override;

 private:
  void Line(std::string_view colour, std::string_view label, std::string_view message);

  Console* console_;
  bool verbose_;
  bool colour_;
};

// One JSON object per line on the console, for programs that drive trainrun:
// {"time": ..., "event": "phase"|"rankStarted"|"rankExited"|"transfer"|"info"|
//  "notice"|"warning"|"error", ...}.
class JsonLinesReporter : public Reporter {
 public:
  explicit JsonLinesReporter(Console* console);

  void PhaseStarted(Phase phase, double previous_seconds) override;
  void RankStarted(int rank, int pid) override;
  void RankExited(int rank, const ExitStatus& status, bool stopped_by_trainrun) override;
  void Transfer(const TransferProgress& progress) override;
  void Info(std::string_view message) override;
  void Notice(std::string_view message) override;
  void Warning(std::string_view message) override;
  void Error(std::string_view message) override;

 private:
  void Emit(nlohmann::json event);
  Console* console_;
};

}  // namespace trainrun
