// The multi-node part of `trainrun run`: where this node stands (cluster
// discovery), the job token, the control plane session, and the rendezvous that
// decides the run id and the ranks before anything is laid out on disk.
//
// The run id: the job file's runId or --run-id when given (every node must be
// given the same), else the head generates one and sends it to every node at
// rendezvous; nodes create their run directories only after that.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "launcher/run_options.h"
#include "runtime/cluster/cluster_discovery.h"
#include "runtime/cluster/cluster_session.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/report/reporter.h"
#include "runtime/run/history.h"
#include "runtime/run/job_config.h"

namespace trainrun {

class ClusterRun {
 public:
  // Where this node stands, from the flags, the scheduler and the job file.
  static Result<Placement> Discover(const RunOptions& options, const JobConfig& job);

  // The control plane for a multi-node job (the head starts listening here), or
  // null for a single-node one. Not owned: `reporter`.
  static Result<std::unique_ptr<ClusterRun>> Create(const RunOptions& options, const JobConfig& job,
                                                    Reporter* reporter);

  // Joins the rendezvous and sets job->run_id to the job's. kUnavailable (69)
  // when it fails; stop() says whether it was a cancel.
  Status Join(JobConfig* job, int process_count, const std::string& process_count_source,
              int gpu_count);

  bool is_head() const { return placement_.node_rank == 0; }
  int node_rank() const { return placement_.node_rank; }
  const Placement& placement() const { return placement_; }
  const JobAssignment& assignment() const { return assignment_; }
  // The attempt this node's ranks start with (after Join): 1, or a later one when
  // this node replaces a lost one (README "A replaced node rejoins").
  int first_attempt() const { return assignment_.attempt; }
  ClusterSession* session() { return session_.get(); }
  // The cluster facts for run.json's details.
  nlohmann::json Details() const;
  // This node's ranks ended (its record so far: ranks, root-cause failure with
  // the stderr tail, warnings): tells the head.
  void ReportResult(const RunRecord& record, std::string_view outcome, int exit_code,
                    int64_t failure_time_ms);
  // After this node's uploads: waits for the job's outcome (the head: for every
  // node), sets the exit code and status every node exits with, and puts the
  // job's root cause (and on the head every node's ranks, upload errors and
  // output conflicts) into `record`.
  void Finish(const UploadReport& uploads, int* exit_code, RunStatus* status, RunRecord* record);
  // After Finish(): the head was lost before it wrote the job's final status.
  bool head_lost() const { return head_lost_; }
  // The key of `trainrun rsh` (MPI's launch agent), hex, for mpirun's
  // environment.
  std::string RshKeyHex() const;

 private:
  ClusterRun() = default;

  RunOptions options_;
  Reporter* reporter_ = nullptr;
  Placement placement_;
  JobToken token_;
  std::unique_ptr<ClusterSession> session_;
  JobAssignment assignment_;
  bool head_lost_ = false;
};

// The SHA-256 of the job file as parsed, which every node must share.
std::string JobDigest(const JobConfig& job);

}  // namespace trainrun
