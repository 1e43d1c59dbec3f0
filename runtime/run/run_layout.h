// Where a run's files are: on this node's disk while it runs, and under its prefix
// in run history. One place for the names so the writer and the readers agree.
//
// clang-format off
// Local:   <workdir base>/<experiment>/<runId>/
//            wd/                  the source snapshot; the ranks' working directory
//            wd/outputs/ wd/logs/ the run's special folders
//            user_logs/std_log_process_<rank>.txt
//            system_logs/trainrun_node_<node>.log
//            system_logs/mpirun.log      mpirun's own output, node 0 of an MPI job
//            metrics/rank_<rank>.jsonl   the metrics each rank logs (metrics.h)
//            data/<name>          default pathOnCompute of data references
//            run.json             the latest run record, also when history is away
//            .run.json.reserve    space for the final run.json on a full disk
//                                 (launcher/run_context.h)
// History: <experiment>/<runId>/{run.json, outputs/, logs/, user_logs/, system_logs/,
//                                metrics/}
// clang-format on
#pragma once

#include <string>

#include <fmt/format.h>

namespace trainrun {

constexpr const char* kOutputsDir = "outputs";
constexpr const char* kLogsDir = "logs";
constexpr const char* kUserLogsDir = "user_logs";
constexpr const char* kSystemLogsDir = "system_logs";
constexpr const char* kMpirunLogName = "mpirun.log";

inline std::string RankLogName(int rank) { return fmt::format("std_log_process_{}.txt", rank); }
inline std::string SystemLogName(int node_rank) {
  return fmt::format("trainrun_node_{}.log", node_rank);
}

struct LocalRunLayout {
  std::string root;

  std::string wd() const { return root + "/wd"; }
  std::string outputs() const { return wd() + "/" + kOutputsDir; }
  std::string logs() const { return wd() + "/" + kLogsDir; }
  std::string user_logs() const { return root + "/" + kUserLogsDir; }
  std::string system_logs() const { return root + "/" + kSystemLogsDir; }
  std::string data() const { return root + "/data"; }
  std::string metrics() const { return root + "/metrics"; }
  std::string record() const { return root + "/run.json"; }
  std::string rank_log(int rank) const { return user_logs() + "/" + RankLogName(rank); }
  std::string system_log(int node_rank) const {
    return system_logs() + "/" + SystemLogName(node_rank);
  }
  std::string mpirun_log() const { return system_logs() + "/" + kMpirunLogName; }
};

}  // namespace trainrun
