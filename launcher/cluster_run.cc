#include "launcher/cluster_run.h"

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/digest.h"
#include "base/fs_util.h"
#include "base/net_util.h"
#include "base/text.h"
#include "launcher/version.h"
#include "runtime/cluster/communicator_env.h"
#include "runtime/cluster/head_session.h"
#include "runtime/cluster/worker_session.h"
#include "runtime/process/process_posix.h"
#include "runtime/run/run_id.h"

namespace trainrun {
namespace {

Duration Seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

// How long a node retries resolving the head's name before it gives up: a
// Slurm node list or a --master-addr names hosts that exist already; a
// Kubernetes headless service publishes a pod's name only once the pod runs.
constexpr Duration kHeadNameWait = std::chrono::seconds(5);
constexpr Duration kHeadNameWaitKubernetes = std::chrono::seconds(120);

// Every node, the head included, resolves the head's name first, so a name no
// node can resolve fails the whole job within seconds, naming the name and where
// it came from, instead of the workers retrying until the rendezvous timeout
// while the head waits for them.
Status WaitForHeadName(const Placement& placement) {
  const bool kubernetes = placement.source.find("Kube") != std::string::npos;
  const Duration wait = kubernetes ? kHeadNameWaitKubernetes : kHeadNameWait;
  const TimePoint deadline = SystemClock()->Now() + wait;
  Status last;
  while (true) {
    Result<std::vector<std::string>> found = ResolveIpv4(placement.head);
    if (found.ok()) return Status::Ok();
    last = found.status();
    if (SystemClock()->Now() >= deadline || SupervisionSignalPending()) break;
    usleep(250 * 1000);
  }
  return UnavailableError(
      fmt::format("{} (tried for {:.0f} s; the head is from {}: {}): make the name resolve on "
                  "every node (DNS or /etc/hosts), or pass --master-addr with the head's address "
                  "(the same on every node)",
                  last.message(), ToSeconds(wait), placement.source, placement.reason));
}

}  // namespace

std::string JobDigest(const JobConfig& job) { return HexEncode(Sha256(job.json)); }

Result<Placement> ClusterRun::Discover(const RunOptions& options, const JobConfig& job) {
  DiscoveryInput in;
  in.node_rank = options.node_rank;
  in.nnodes = options.nnodes;
  in.master_addr = options.master_addr;
  if (job.node_count_set) in.job_node_count = job.node_count;
  in.job_head_host = job.rendezvous.head_host;
  in.job_file = job.file;
  in.env = CurrentEnvMap();
  const char* sagemaker = getenv("TRAINRUN_SAGEMAKER_RESOURCECONFIG");
  in.sagemaker_config_path =
      sagemaker != nullptr && *sagemaker ? sagemaker : kSageMakerResourceConfig;
  if (Result<std::string> text = ReadFileToString(in.sagemaker_config_path); text.ok()) {
    in.sagemaker_config = *text;
  }
  for (const LocalAddress& a : LocalIpv4Addresses()) in.local_addresses.push_back(a.address);
  return DiscoverPlacement(in);
}

Result<std::unique_ptr<ClusterRun>> ClusterRun::Create(const RunOptions& options,
                                                       const JobConfig& job, Reporter* reporter) {
  TR_ASSIGN_OR_RETURN(Placement placement, Discover(options, job));
  if (placement.node_count <= 1) return std::unique_ptr<ClusterRun>();
  std::unique_ptr<ClusterRun> run(new ClusterRun());
  run->options_ = options;
  run->reporter_ = reporter;
  run->placement_ = placement;
  reporter->Info(fmt::format("node {} of {} ({}): {}", placement.node_rank, placement.node_count,
                             placement.source, placement.reason));
  for (const std::string& note : placement.notes) reporter->Info(note);
  reporter->Info(
      fmt::format("control port {} ({})", options.control_port, options.control_port_reason));
  if (!placement.head.empty()) TR_RETURN_IF_ERROR(WaitForHeadName(placement));

  const char* token = getenv(kJobTokenVariable);
  const std::string identity =
      fmt::format("{}\n{}\n{}\n{}\n{}\n{}", placement.scheduler_job_id, JobDigest(job), job.run_id,
                  placement.head, options.control_port, placement.node_count);
  run->token_ = ResolveJobToken(token != nullptr ? token : "", identity);
  if (run->token_.derived) {
    reporter->Warning(
        fmt::format("{} is not set: the nodes authenticate with a token "
                    "derived from the job's identity "
                    "(scheduler job id, job file, head address, control port), "
                    "which anyone who can read the "
                    "job file can derive; set {} to a secret shared by the "
                    "nodes to protect the control plane",
                    kJobTokenVariable, kJobTokenVariable));
  } else if (run->token_.secret.size() < kMinJobTokenChars) {
    reporter->Warning(fmt::format("{} is shorter than {} characters; use a long random secret",
                                  kJobTokenVariable, kMinJobTokenChars));
  }

  SessionOptions session;
  double timeout = options.rendezvous_timeout_seconds.value_or(
      job.rendezvous.timeout_seconds ? *job.rendezvous.timeout_seconds
                                     : ToSeconds(kDefaultRendezvousTimeout));
  session.rendezvous_timeout = Seconds(timeout);
  session.finalize_timeout = Seconds(options.finalize_timeout_seconds) + kFinalizeWaitMargin;
  session.heartbeat = HeartbeatOptions::ForTimeout(Seconds(options.heartbeat_timeout_seconds));
  if (job.restarts.enabled()) {
    // A lost node's replacement may join the next attempt (README "A replaced node
    // rejoins"); by default for as long as a node may take to join at all.
    const double rejoin = job.restarts.rejoin_timeout_seconds.value_or(timeout);
    if (rejoin > 0) session.rejoin_timeout = Seconds(rejoin);
  }
  session.cancel_requested = SupervisionSignalPending;
  session.reporter = reporter;
  if (placement.node_rank == 0) {
    Result<std::unique_ptr<HeadSession>> head =
        HeadSession::Start(session, run->token_, options.control_port);
    if (!head.ok()) {
      return Status(
          head.status().code(),
          fmt::format("the head cannot listen on control port {} ({}): {}; pass "
                      "--control-port PORT (or TRAINRUN_CONTROL_PORT), the same on "
                      "every node",
                      options.control_port, options.control_port_reason, head.status().message()));
    }
    run->session_ = std::move(head).value();
  } else {
    run->session_ = std::make_unique<WorkerSession>(session, run->token_, placement.head,
                                                    options.control_port, placement.node_rank);
  }
  return run;
}

Status ClusterRun::Join(JobConfig* job, int process_count, const std::string& process_count_source,
                        int gpu_count) {
  NodeJoin self;
  self.node_rank = placement_.node_rank;
  self.node_count = placement_.node_count;
  self.host = LocalHostName();
  for (const LocalAddress& a : LocalIpv4Addresses()) {
    if (!a.loopback) self.addresses.push_back(a.address);
  }
  self.process_count = process_count;
  self.process_count_source = process_count_source;
  self.gpu_count = gpu_count;
  self.pid = getpid();
  self.job_digest = JobDigest(*job);
  self.trainrun_version = kTrainrunVersion;
  self.run_id = job->run_id;
  if (NeedsTfPorts(job->communicator)) {
    TR_ASSIGN_OR_RETURN(self.tf_ports, FreePorts(process_count));
  }
  if (auto* head = dynamic_cast<HeadSession*>(session_.get())) {
    head->set_run_id(job->run_id.empty()
                         ? GenerateRunId(job->experiment_name, SystemClock()->WallNow())
                         : job->run_id);
  }
  TR_ASSIGN_OR_RETURN(assignment_, session_->Rendezvous(self));
  job->run_id = assignment_.run_id;
  const NodeSlot& me = assignment_.nodes[placement_.node_rank];
  if (!placement_.interface_hint.empty() && me.interface != placement_.interface_hint) {
    reporter_->Info(
        fmt::format("the scheduler names interface {}; this node reaches the head by {}",
                    placement_.interface_hint, me.interface));
  }
  if (assignment_.attempt > 1) {
    reporter_->Notice(fmt::format(
        "this node takes the place of the job's lost node {}: its ranks join attempt {}",
        placement_.node_rank, assignment_.attempt));
  }
  reporter_->Info(fmt::format(
      "this node: {} ({}, interface {}), ranks {}-{} of {}; MASTER_ADDR {} "
      "MASTER_PORT {}",
      me.host, me.address, me.interface, me.first_rank, me.first_rank + me.process_count - 1,
      assignment_.world_size, assignment_.master_addr, assignment_.master_port));
  return Status::Ok();
}

void ClusterRun::ReportResult(const RunRecord& record, std::string_view outcome, int exit_code,
                              int64_t failure_time_ms) {
  NodeResult result;
  result.node_rank = placement_.node_rank;
  result.host = LocalHostName();
  result.outcome = !record.outcome.empty() ? record.outcome : std::string(outcome);
  result.exit_code = exit_code;
  result.stop_reason = record.stop_reason;
  result.ranks = record.ranks;
  result.failure = record.failure;
  result.failure_time_ms = failure_time_ms;
  result.warnings = record.warnings;
  for (const NodeRecord& node : record.nodes) {
    if (node.node_rank == placement_.node_rank) result.workdir = node.workdir;
  }
  session_->ReportResult(result);
}

void ClusterRun::Finish(const UploadReport& uploads, int* exit_code, RunStatus* status,
                        RunRecord* record) {
  NodeDone done{uploads.files, uploads.bytes, uploads.errors};
  JobOutcome local;
  local.exit_code = *exit_code;
  local.status = *status;
  local.outcome = record->outcome;
  local.stop_reason = record->stop_reason;
  local.failure = record->failure;
  local.upload_errors = uploads.errors;
  reporter_->Info(is_head() ? "waiting for every node to finish its uploads"
                            : "uploads done; waiting for the head's final status");
  JobOutcome job = session_->Finish(done, local);
  head_lost_ = job.head_lost;
  *exit_code = job.exit_code;
  *status = job.status;
  record->outcome = job.outcome;
  record->stop_reason = job.stop_reason;
  record->failure = job.failure;
  if (is_head()) {
    record->ranks = job.ranks;
    record->upload_errors.insert(record->upload_errors.end(), job.upload_errors.begin(),
                                 job.upload_errors.end());
    record->details["nodeWarnings"] = job.warnings;
    record->details["outputConflicts"] = ConflictsToJson(job.conflicts);
    record->details["nodeUploads"] = job.nodes;
    // The head knows the other nodes' run directories from their results.
    for (NodeRecord& node : record->nodes) {
      for (const nlohmann::json& reported : job.nodes) {
        if (node.workdir.empty() && reported.value("nodeRank", -1) == node.node_rank) {
          node.workdir = reported.value("workdir", "");
        }
      }
    }
  }
  if (job.failure && (job.failure->node_rank != node_rank() || job.failure->rank < 0)) {
    // Another node's words, escaped when decoded; escaping again changes nothing but
    // keeps this line safe whatever the source.
    std::string summary =
        fmt::format("the job failed on node {} ({}): {}", job.failure->node_rank,
                    EscapeControl(job.failure->host), EscapeControl(job.failure->reason));
    for (const std::string& line : job.failure->stderr_tail)
      summary += "\n  | " + EscapeControl(line);
    reporter_->Error(summary);
  } else if (job.exit_code != 0 && !job.failure && !job.stop_reason.empty()) {
    // The job's stop, said once (Finalize leaves it to this line on a multi-node
    // job): it names the node where it came from.
    reporter_->Error(fmt::format("the job stopped: {}", EscapeControl(job.stop_reason)));
  }
}

std::string ClusterRun::RshKeyHex() const { return HexEncode(RoleKey(token_, kRoleRsh)); }

nlohmann::json ClusterRun::Details() const {
  nlohmann::json nodes = nlohmann::json::array();
  for (const NodeSlot& n : assignment_.nodes) {
    if (n.host.empty()) continue;  // another node, not described to this one
    nodes.push_back({{"nodeRank", n.node_rank},
                     {"host", n.host},
                     {"address", n.address},
                     {"interface", n.interface},
                     {"processCount", n.process_count},
                     {"firstRank", n.first_rank}});
  }
  return {{"source", placement_.source},
          {"reason", placement_.reason},
          {"schedulerJobId", placement_.scheduler_job_id},
          {"head", placement_.head},
          {"controlPort", options_.control_port},
          {"jobTokenDerived", token_.derived},
          {"masterAddr", assignment_.master_addr},
          {"masterPort", assignment_.master_port},
          {"worldSize", assignment_.world_size},
          {"nodes", nodes}};
}

}  // namespace trainrun
