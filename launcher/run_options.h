// The options of `trainrun run` (its flags, see main.cc), shared by the command
// (run_command.h), its phases and the multi-node part (cluster_run.h).
#pragma once

#include <optional>
#include <string>

#include "runtime/cluster/cluster_discovery.h"
#include "runtime/run/history_uploader.h"
#include "runtime/run/live_uploader.h"
#include "runtime/run/run_lease.h"

namespace trainrun {

constexpr const char* kDefaultWorkdirBase = "/tmp/trainrun";

// Which ranks' output is copied to the console (the log files get everything).
enum class ConsoleRanks { kAll, kRank0, kNone };

struct RunOptions {
  std::string job_file;
  std::optional<int> node_rank;  // this node's rank in the job
  std::optional<int> nnodes;     // nodes in the job
  std::string master_addr;       // the head node's address
  int control_port = kDefaultControlPort;
  // Where control_port came from, for messages: "--control-port", or main's
  // DefaultControlPort reason when neither the flag nor its variable was given.
  std::string control_port_reason = "--control-port";
  // Multi-node timeouts: none = the job file's rendezvous.timeoutSeconds, else 600.
  std::optional<double> rendezvous_timeout_seconds;
  double heartbeat_timeout_seconds = 10;  // a node silent this long is lost
  std::string history;                    // run history URI; empty: job file, then default
  std::string run_id;                     // overrides the job file's runId
  // Overrides the job file's maxRestarts (runtime/run/restart_policy.h).
  std::optional<int> max_restarts;
  std::string workdir;       // where <experiment>/<runId>/ is made
  std::string topology_xml;  // an hwloc XML topology instead of this machine's
  bool dry_run = false;      // print the plan, start nothing
  // `trainrun check`: the preflight only (on, with the job file's settings or the
  // defaults), then Finalizing; the user's script never starts.
  bool check_only = false;
  // Seconds between SIGTERM and SIGKILL for the ranks; none: derived from the stop
  // budget when there is one, else 30 (launcher/stop_plan.h).
  std::optional<double> grace_period_seconds;
  // How long after SIGKILL trainrun waits for ranks before it records them as
  // unkillable and goes on to Finalizing; none: 60, less under a stop budget.
  std::optional<double> unkillable_timeout_seconds;
  // Seconds between the SIGTERM a scheduler or container engine sends trainrun and
  // its SIGKILL; none: detected (Slurm's KillWait, Kubernetes, a container), 0: no
  // SIGKILL is coming (runtime/process/stop_budget.h).
  std::optional<double> stop_timeout_seconds;
  // How the ranks' processes are kept from outliving trainrun: "auto" (a PID
  // namespace where permitted, else process groups), "process-group" or "none"
  // (see Isolation in runtime/process/process_posix.h).
  std::string isolation = "auto";
  // How long Finalizing keeps retrying uploads to an unreachable store before it
  // gives up with exit 74 (the files stay on local disk).
  double finalize_timeout_seconds = ToSeconds(kDefaultFinalizeTimeout);
  // How often logs are uploaded while the ranks run.
  double log_upload_interval_seconds = ToSeconds(kDefaultLiveUploadInterval);
  // How often the run's lease in history is renewed (runtime/run/run_lease.h).
  double lease_interval_seconds = ToSeconds(kDefaultLeaseInterval);
  ConsoleRanks console = ConsoleRanks::kAll;
  bool verbose = false;      // Info lines on the terminal too
  bool json_events = false;  // JSON lines instead of text on stderr
  // What main did to the open-file limit (base/fd_limit.h), for the system log;
  // `fd_limit_failed` when it could not raise it (then a warning).
  std::string fd_limit_note;
  bool fd_limit_failed = false;
};

}  // namespace trainrun
