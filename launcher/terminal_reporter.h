// The Reporter people see: "trainrun: ..." lines on stderr, colours and a live
// transfer line only on a terminal, Info lines only with --verbose.
//
// Transfers in progress: on a terminal, one progress bar redrawn in place (at most
// every kProgressRedraw); elsewhere (a log file, a pipe) one line every
// kProgressLineInterval, so logs of long downloads stay short.
#pragma once

#include <mutex>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "runtime/report/console.h"
#include "runtime/report/reporter.h"

namespace trainrun {

constexpr auto kProgressRedraw = std::chrono::milliseconds(200);
constexpr auto kProgressLineInterval = std::chrono::seconds(5);

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

  // On a multi-node job every line says which node it is from,
  // "trainrun [node 1]: ...", as the consoles of all nodes often end up in one
  // stream (srun, kubectl logs of a JobSet). Any thread.
  void LabelNode(int node_rank);

 private:
  void Line(std::string_view colour, std::string_view label, std::string_view message);
  std::string ProgressText(const TransferProgress& p, TimePoint now) const;

  Console* console_;
  bool verbose_;
  bool colour_;
  std::mutex mu_;  // the prefix and the progress state below
  std::string prefix_ = "trainrun: ";
  bool bar_shown_ = false;     // a bar is on the current terminal line
  std::string progress_what_;  // the transfer the times below are for
  TimePoint progress_started_{};
  TimePoint progress_last_{};
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
