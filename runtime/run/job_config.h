// The job file: Azure ML RunConfiguration field names, as a plain struct.
//
// JSON, or YAML (Azure ML's .runconfig; see LooksLikeYaml in yaml_json.h), read into
// the same tree. Azure ML's own fields are translated, ignored or refused first
// (azureml_config.h); names match case-insensitively, with or without '_'.
// ParseJobFile() reads and validates it once; everything after works on JobConfig.
// Every error names the file and the field as a JSON pointer, e.g.
//   job.json: /data/mnist/mechanism: "mnt" is not one of mount, download, direct
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "runtime/run/python_env_spec.h"
#include "runtime/run/restart_policy.h"
#include "runtime/run/tensorflow_config.h"

namespace trainrun {

constexpr const char* kDefaultExperimentName = "default";
constexpr const char* kDefaultPythonInterpreter = "python3";
constexpr int kMaxProcessesPerNode = 4096;
constexpr int kMaxNodeCount = 65536;
// A job file is a few kilobytes; more than this is a mistake (or /dev/zero) and is
// refused before it is read.
constexpr size_t kMaxJobFileBytes = 4 << 20;
// Arrays and objects inside each other, counting the top-level object as 1. Checked
// while scanning, before any tree is built: the tree and its printing recurse once
// per level, so a file nested 60,000 deep would overflow the stack.
constexpr int kMaxJobNestingDepth = 64;

// kParameterServer: TensorFlow with parameter servers (Azure ML's name), roles
// from the `tensorflow` section (tensorflow_config.h, runtime/cluster/tf_roles.h).
enum class Communicator { kNone, kMpi, kNccl, kGloo, kTensorFlow, kParameterServer };
std::string_view CommunicatorName(Communicator c);

enum class DataMechanism { kMount, kDownload, kDirect };
std::string_view DataMechanismName(DataMechanism m);

// How ranks are placed on the node's CPUs, GPUs and NUMA memory.
enum class BindingPolicy { kAuto, kNone };

struct DataReference {
  std::string name;  // the key under "data"; also AZUREML_DATAREFERENCE_<name>
  std::string uri;   // dataLocation.uri: a local path, file://, az://, s3://, https://
  DataMechanism mechanism = DataMechanism::kMount;
  std::string path_on_compute;            // empty: <run dir>/data/<name>
  std::string environment_variable_name;  // an extra variable holding the path
  bool overwrite = false;                 // download over existing files
};

struct HistoryConfig {
  // Upload ./outputs to run history at the end of the run.
  bool output_collection = true;
  // Directories of the working directory whose files reach run history; "logs"
  // always does.
  std::vector<std::string> directories_to_watch;
  // Where run history lives; empty: the command line, TRAINRUN_HISTORY, or default.
  std::string uri;
};

// Multi-node jobs: how the nodes find each other.
struct RendezvousConfig {
  std::string head_host;               // the head's host name, when no scheduler says it
  std::optional<int> timeout_seconds;  // how long nodes wait for each other
};

// What to do when preflight finds no GPU on a node (no NVML, no device, or the NCCL
// check says so): fail the job (exit 75) or skip the GPU checks with a warning.
enum class PreflightNoGpu { kFail, kSkip };

// The NCCL check of preflight: trainrun-nccl-check on every planned rank of every
// node (README "Preflight"). A short sweep, not nccl-tests' 1 GiB default: enough
// to reach the bandwidth plateau between nodes and see a hang, in seconds.
constexpr double kDefaultPreflightMinBusBandwidthGBps = 0;  // 0: no floor
constexpr int kDefaultPreflightNcclTimeoutSeconds = 300;
constexpr uint64_t kDefaultPreflightMinBytes = 8;
constexpr uint64_t kDefaultPreflightMaxBytes = uint64_t{256} << 20;
constexpr int kDefaultPreflightIterations = 10;
constexpr int kDefaultPreflightWarmup = 2;

struct PreflightNcclConfig {
  bool enabled = true;
  // Each collective's peak bus bandwidth (GB/s, 1e9 B/s) must reach this.
  double min_bus_bandwidth_gbps = kDefaultPreflightMinBusBandwidthGBps;
  // The whole check, from its start on this node to its last rank's exit; also
  // how long the ranks wait for each other to exchange NCCL's unique id.
  int timeout_seconds = kDefaultPreflightNcclTimeoutSeconds;
  uint64_t min_bytes = kDefaultPreflightMinBytes;  // sizes double from min to max
  uint64_t max_bytes = kDefaultPreflightMaxBytes;
  int iterations = kDefaultPreflightIterations;  // timed runs per size
  int warmup = kDefaultPreflightWarmup;          // untimed runs per size
  std::vector<std::string> operations = {"all_reduce", "all_gather", "reduce_scatter"};
};

// `preflight` in the job file: off unless given; `true` is every default.
struct PreflightConfig {
  bool enabled = false;
  bool health = true;  // the NVML health checks per GPU
  // /preflight/health as given when it is an object (the thresholds, JSON text),
  // else empty (the defaults). The launcher validates it (gpu/ owns the fields).
  std::string health_thresholds_json;
  PreflightNcclConfig nccl;
  PreflightNoGpu on_no_gpu = PreflightNoGpu::kFail;
};

// What trainrun made of a job file written for Azure ML (runtime/run/azureml_config.h).
struct AzureMlJob {
  // The file is Azure ML's (a .runconfig, or a field only Azure ML has) and gets Azure
  // ML's defaults: one process per node with all of its GPUs.
  bool recognised = false;
  std::string recognised_by;  // ".runconfig" or the first Azure ML-only field's pointer
  // One line per translated or ignored field and per Azure ML default applied, for
  // the console: "/target: ignored: the compute target: ...".
  std::vector<std::string> notes;
  // docker.shmSize: bytes, as written, and its field; checked against /dev/shm.
  std::optional<uint64_t> shm_size_bytes;
  std::string shm_size_text;
  std::string shm_size_field;
  // useGpu; true: warn when the node has no GPU for the job.
  std::optional<bool> use_gpu;
};

// `checkpoints` in the job file (README "Checkpoints"): a folder of the working
// directory whose complete files trainrun uploads while the ranks run, and restores
// before they start. Off unless the section (or `resumeFrom`) is given.
constexpr const char* kDefaultCheckpointPath = "checkpoints";
constexpr double kDefaultCheckpointQuietSeconds = 10;
constexpr int kDefaultCheckpointKeepLast = 3;
constexpr double kDefaultCheckpointScanSeconds = 1;

struct CheckpointConfig {
  bool enabled = false;
  // Relative to the working directory, inside it.
  std::string path = kDefaultCheckpointPath;
  // Any store URI; empty: run history, under <experiment>/<runId>/checkpoints/.
  std::string uri;
  // A unit unchanged this long is complete; 0: only the script's signal says so.
  double quiet_period_seconds = kDefaultCheckpointQuietSeconds;
  // Units kept in the store (the newest); 0: every one.
  int keep_last = kDefaultCheckpointKeepLast;
  // Average upload rate while the ranks run; 0: no cap.
  uint64_t max_upload_bytes_per_second = 0;
  // How often the folder is looked at (and the script's signals seen).
  double scan_interval_seconds = kDefaultCheckpointScanSeconds;
};

// Cloud preemption notices that stop the run early, as a SIGTERM would
// (README "Preemption"). Both off by default.
constexpr int kDefaultPreemptionPollSeconds = 5;

struct PreemptionConfig {
  std::string notice_file;  // absolute; its appearance is the notice
  std::string notice_url;   // http(s):// polled with GET
  // The notice: a 2xx response whose body contains this ("": any 2xx).
  std::string body_contains;
  std::vector<std::pair<std::string, std::string>> headers;  // sent with each poll
  int poll_interval_seconds = kDefaultPreemptionPollSeconds;
};

struct JobConfig {
  std::string file;  // the job file as given, for messages
  // Exactly one of script (run with the Python interpreter) or command (an argv).
  std::string script;
  std::vector<std::string> command;
  std::vector<std::string> arguments;  // placeholders not yet expanded
  std::string source_directory;        // absolute; default: the job file's folder
  std::string experiment_name = kDefaultExperimentName;
  std::string run_id;  // empty: generated
  Communicator communicator = Communicator::kNone;
  int node_count = 1;
  bool node_count_set = false;  // the file gives nodeCount
  RendezvousConfig rendezvous;
  std::optional<int> process_count_per_node;  // none: GPUs on the node, else 1
  // none: 1 when the node has GPUs; 0: all of them (Azure ML's default, never parsed)
  std::optional<int> gpus_per_process;
  BindingPolicy binding = BindingPolicy::kAuto;
  std::optional<int> max_run_duration_seconds;
  std::vector<std::pair<std::string, std::string>> environment_variables;
  std::string interpreter_path;  // empty: python3 from PATH
  PythonEnvSpec python;          // environment.python: the packages to install (deps)
  std::vector<DataReference> data;
  HistoryConfig history;
  PreflightConfig preflight;
  TensorFlowConfig tensorflow;  // used by communicator ParameterServer only
  AzureMlJob azureml;
  // maxRestarts and the restarts section (README "In-place restarts").
  RestartPolicy restarts;
  CheckpointConfig checkpoints;
  // A previous run id (same experiment) or a store URI whose checkpoints are
  // restored before the ranks start; empty: this run's own.
  std::string resume_from;
  PreemptionConfig preemption;
  std::string json;  // the job file as parsed (not redacted), for the run record
};

// Reads, parses and validates `path`. Relative paths in the file are resolved
// against the file's folder. Errors are kInvalidJob and name the file and field;
// several errors are reported together, one per line. Limits, each an error naming
// the file (and the field where there is one):
// - `path` must be a regular file (a FIFO, device or directory is refused without
//   reading from it, so `trainrun run /dev/zero` or a FIFO never blocks) of at most
//   kMaxJobFileBytes; a `path` longer than a path may be is kInvalidArgument;
// - arrays and objects nest at most kMaxJobNestingDepth deep;
// - every path and URI field (script, command[0], sourceDirectory, pathOnCompute,
//   dataLocation.uri, interpreterPath, directoriesToWatch, history.uri, data
//   reference names) fits kMaxPathBytes with components of at most kMaxNameBytes
//   (base/input_limits.h);
// - numbers are range-checked as JSON values before they are converted.
// A file that cannot be opened is kNotFound, kPermissionDenied or kIoError.
Result<JobConfig> ParseJobFile(const std::string& path);

// Same, for text already in memory (with the same size, nesting and field limits);
// `path` is used for messages and for resolving relative paths. Never throws.
Result<JobConfig> ParseJobText(const std::string& text, const std::string& path);

// Checks that experiment names and run ids are safe as path and key segments:
// 1–255 of [A-Za-z0-9_.-], starting with a letter or digit.
bool IsValidRunName(std::string_view name);

}  // namespace trainrun
