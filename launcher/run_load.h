// The first phase of `trainrun run` (run_command.h), before anything runs: the job
// file, where this node stands, run history (Load); once the run id is known, where
// the run lives (LayOut); then the run directory and the system log in it. Internal
// to the launcher.
#pragma once

#include <functional>
#include <memory>

#include "launcher/cluster_run.h"
#include "launcher/run_context.h"
#include "launcher/run_options.h"
#include "runtime/cluster/cluster_discovery.h"
#include "runtime/report/reporter.h"
#include "runtime/run/history.h"
#include "runtime/run/history_uploader.h"
#include "runtime/run/job_config.h"
#include "runtime/run/run_layout.h"
#include "runtime/store/store.h"

namespace trainrun {

// What Load produces; the later phases read it, Finalizing uploads through it.
struct LoadedRun {
  JobConfig job;                        // the job file, with --run-id applied
  Placement placement;                  // this node's place in the job (node 0 of 1 on one node)
  std::unique_ptr<Store> store;         // run history's store
  std::unique_ptr<RunHistory> history;  // over `store`
  std::unique_ptr<HistoryUploader> uploader;  // to `store`; retries at Finalizing
  // The control plane of a multi-node job (the head already listens); null on one
  // node and in a dry run. Last, so that it goes first.
  std::unique_ptr<ClusterRun> cluster;

  int node_rank() const { return placement.node_rank; }
};

// Reads the job file, applies --run-id, finds where this node stands (a dry run
// only discovers; a real multi-node run also starts the control plane) and opens
// run history (--history, else the job file's, else the default). Fails with the
// job file's error, kInvalidArgument for a bad --run-id or --history, kInvalidJob
// for a bad history URI in the job file, or the cluster's error. Not owned:
// `reporter`, which must outlive the result. `placed`, when set, is called with
// the placement as soon as it is known, before the control plane starts.
Result<LoadedRun> LoadRun(const RunOptions& options, Reporter* reporter,
                          const std::function<void(const Placement&)>& placed = {});

// Once the run id is known (after the rendezvous on a multi-node job): generates
// it into `job` if neither the job nor the rendezvous gave one, and returns where
// the run lives (--workdir, else /tmp/trainrun, then experiment/run id, and on a
// multi-node job a folder per node, node<rank>-<host>, so that nodes sharing one
// --workdir (NFS, Lustre, a cluster's home) never meet). Creates nothing.
LocalRunLayout LayOutRun(const RunOptions& options, const Placement& placement, JobConfig* job);

// The run record as it starts: ids, version, the redacted job, the job file's
// path and, on a multi-node job, the cluster's facts. `cluster` may be null.
RunRecord StartRunRecord(const JobConfig& job, const ClusterRun* cluster);

// Creates the run directory (wd/, user_logs/, system_logs/), opens this node's
// system log in it and attaches it to `reporting`, then reports where the run and
// its history are. Fails with kAlreadyExists when the run is already in history
// (checked by the head or the single node) or the directory exists, or with the
// file system's error; then nothing is attached.
Status CreateRunDirectory(const LoadedRun& run, const LocalRunLayout& layout,
                          RunReporting* reporting);

}  // namespace trainrun
