// Where this node stands in the job: its node rank, the node count and the
// head's address, from (in this order) the command line, Slurm, a Kubernetes
// indexed Job or JobSet, Kubeflow's PyTorchJob variables, Azure Batch, and
// SageMaker's resourceconfig.json.
//
// The first scheduler whose variables are present is used; values given on the
// command line (or TRAINRUN_NODE_RANK, TRAINRUN_NNODES, TRAINRUN_MASTER_ADDR)
// win over it and the placement says so. A scheduler whose own variables
// contradict each other, or a job file whose nodeCount disagrees with the
// scheduler, is an error that names both.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace trainrun {

constexpr const char* kSageMakerResourceConfig = "/opt/ml/input/config/resourceconfig.json";

using EnvMap = std::map<std::string, std::string>;

// What one scheduler's environment says (any field may be missing).
struct SchedulerView {
  std::string name;  // "Slurm", "Kubernetes", "Kubeflow", "Azure Batch", "SageMaker"
  std::optional<int> node_rank;
  std::optional<int> node_count;
  std::string head;            // host name or address of node 0
  std::string job_id;          // the scheduler's id of the job, for the run record
  std::string interface_hint;  // a network interface the scheduler names
  std::string evidence;        // the variables it was read from, for messages
};

// One function per scheduler: nothing when its variables are absent, an error
// when they are present but contradict each other.
std::optional<Result<SchedulerView>> FromSlurm(const EnvMap& env);
// `job_head_host` is the job file's rendezvous.headHost (may be empty).
std::optional<Result<SchedulerView>> FromKubernetes(const EnvMap& env,
                                                    const std::string& job_head_host);
std::optional<Result<SchedulerView>> FromKubeflow(const EnvMap& env);
// `local_addresses`: this node's IPv4 addresses, to find it in the host list.
std::optional<Result<SchedulerView>> FromAzureBatch(
    const EnvMap& env, const std::vector<std::string>& local_addresses);
// `config_text`: the content of resourceconfig.json, when the file exists.
std::optional<Result<SchedulerView>> FromSageMaker(const std::optional<std::string>& config_text,
                                                   const std::string& path);

struct DiscoveryInput {
  // The command line (or TRAINRUN_*).
  std::optional<int> node_rank;
  std::optional<int> nnodes;
  std::string master_addr;
  // The job file.
  std::optional<int> job_node_count;  // nodeCount when the file sets it
  std::string job_head_host;          // rendezvous.headHost
  std::string job_file;               // for messages
  // The machine.
  EnvMap env;
  std::optional<std::string> sagemaker_config;  // resourceconfig.json's text, if present
  std::string sagemaker_config_path = kSageMakerResourceConfig;
  std::vector<std::string> local_addresses;
};

struct Placement {
  int node_rank = 0;
  int node_count = 1;
  std::string head;    // empty for a single-node job
  std::string source;  // "flags", "Slurm", "flags + Slurm", "job file", ...
  std::string reason;  // how each value was decided, for --dry-run and the log
  std::string scheduler_job_id;
  std::string interface_hint;
  std::vector<std::string> notes;  // overrides and ignored sources
};

// Combines the sources as described above. Errors are kInvalidArgument (64) for
// flags that contradict themselves, kInvalidJob (65) for a job file at odds
// with the scheduler, and kUnavailable (69) when a multi-node job cannot tell
// where this node stands.
Result<Placement> DiscoverPlacement(const DiscoveryInput& input);

// The head's control port when neither --control-port nor TRAINRUN_CONTROL_PORT
// says: under Slurm kDefaultControlPort + SLURM_JOB_ID mod kControlPortSpan
// (29400-30399; a job id that is not a number is hashed first), so two jobs
// whose heads share a node get different ports unless their ids are a multiple
// of 1000 apart; elsewhere kDefaultControlPort (a Kubernetes pod has its own
// address). Every node of a job computes the same port.
constexpr int kDefaultControlPort = 29400;
constexpr int kControlPortSpan = 1000;
struct ControlPortChoice {
  int port = kDefaultControlPort;
  std::string reason;  // "29400 + SLURM_JOB_ID 4242 mod 1000", for messages
};
ControlPortChoice DefaultControlPort(const EnvMap& env);

// The environment as a map.
EnvMap CurrentEnvMap();

}  // namespace trainrun
