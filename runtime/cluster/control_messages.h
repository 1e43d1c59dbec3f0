// The control messages a peer sends, as typed values, and their decoders: the only
// code that reads a JSON payload from the network. Each decoder checks every field
// it reads (type, range, size; field_reader.h) and returns either a value that is
// safe to use or kInvalidArgument naming the message type and the field:
//
//   RankFailed: field "rank": expected an integer from 0 to 268435455, got a string
//
// Who receives what (the handlers in head_session*.cc, worker_session.cc and
// launcher/rsh_command.cc call these and nothing else):
//
// clang-format off
//   head, from a node     Join (rendezvous.h), Ready, Preflight, Heartbeat, RankFailed,
//                         NodeStopping, AttemptEnded, NodeResult, Manifest, NodeDone,
//                         RshExit, RshData
//   head, from an agent   RshOpen, RshData
//   node, from the head   Assign (rendezvous.h), Start, PreflightPassed, Heartbeat, Stop,
//                         AttemptVerdict, UploadPlan, Finished, RshExec, RshData, RshClose,
//                         Refused
//   agent, from the head  RshData, RshExit
// clang-format on
//
// Text that people read (hosts, reasons, warnings, errors, stderr lines) comes out
// escaped (FieldReader::Text, EscapeControl in base/text.h): it can go to the
// console, the system log and run.json as it is. Values that are data (file keys,
// argv, digests, run ids) are kept as they arrived; where one is printed, the
// message escapes it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "runtime/cluster/control_protocol.h"
#include "runtime/cluster/node_report.h"
#include "runtime/cluster/output_merge.h"
#include "runtime/run/job_config.h"
#include "runtime/run/run_record.h"

namespace trainrun {

// Limits on what a peer may send (beyond the frame's kMaxControlPayload).
constexpr int64_t kMaxGlobalRank = int64_t{kMaxNodeCount} * kMaxProcessesPerNode - 1;
constexpr int kMaxExitCode = 255;
constexpr int kMaxSignalNumber = 64;
constexpr int64_t kMaxPid = (int64_t{1} << 31) - 1;
constexpr int64_t kMaxTimeMs = int64_t{1} << 53;  // Unix ms, exact in a double
constexpr size_t kMaxPeerTextBytes = 8 << 20;     // a reason, an error, a stderr line
constexpr size_t kMaxPeerListItems = 1 << 16;     // warnings, stderr lines, errors
constexpr size_t kMaxShortTextBytes = 255;        // a host, address, version, run id
// Short text the head relays from a node (the hosts in an assignment, a failure's
// host): escaped on the way, it may have grown fourfold.
constexpr size_t kMaxRelayedShortTextBytes = 4 * kMaxShortTextBytes;
constexpr size_t kMaxManifestFiles = 1 << 20;
constexpr size_t kMaxDigestBytes = 64;     // SHA-256, hex
constexpr size_t kMaxArgvItems = 1 << 16;  // an rsh command line
constexpr size_t kMaxArgBytes = 128 << 10;

// kStart, kPreflightPassed, kHeartbeat: an object, no field read.
// kReady (node -> head): {"attempt"} when the node is ready for that attempt
// after its first (in-place restarts), else {}.
Status DecodeEmpty(const Frame& frame);

// kRankFailed: a rank on the sending node failed.
struct RankFailedMessage {
  int rank = 0;
  int exit_code = 1;
  int signal = 0;
  std::string reason = "failed";
  int pid = 0;
  std::optional<int64_t> time_ms;  // when it was seen (Unix ms)
};
Result<RankFailedMessage> DecodeRankFailed(const Frame& frame);

// kNodeStopping (node -> head) and kStop (head -> node).
struct StopMessage {
  int exit_code = 1;
  std::string reason;
  std::optional<int64_t> time_ms;  // kNodeStopping only
};
Result<StopMessage> DecodeStop(const Frame& frame);

// kAttemptEnded (node -> head): {"attempt"}, the attempt (1 to kMaxAttempts) whose
// ranks all ended on the sending node.
constexpr int kMaxAttempts = 1001;  // maxRestarts' limit (restart_policy.h) + 1
Result<int> DecodeAttemptEnded(const Frame& frame);

// kAttemptVerdict (head -> node): AttemptVerdict::ToJson.
Result<AttemptVerdict> DecodeAttemptVerdict(const Frame& frame);
// kReady's attempt, none when the node's first start.
Result<std::optional<int>> DecodeReady(const Frame& frame);

// kPreflight: {"passed", "exitCode" (0-255), "reason", "report" (an object)}. A
// failed one needs a reason and a non-zero code. The report is free-form (the
// checks' figures): it must be an object, and every key and string in it comes out
// escaped as Text.
Result<PreflightResult> DecodePreflight(const Frame& frame);

// kNodeResult. The node rank it names is not trusted (the head knows it).
Result<NodeResult> DecodeNodeResult(const Frame& frame);

// kManifest: first the node's files, then (when asked) their digests.
struct ManifestMessage {
  std::optional<std::vector<ManifestEntry>> files;
  std::optional<std::map<std::string, std::string>> digests;  // key -> SHA-256, hex
};
Result<ManifestMessage> DecodeManifest(const Frame& frame);

// kNodeDone.
Result<NodeDone> DecodeNodeDone(const Frame& frame);

// kRshOpen (agent -> head).
struct RshOpenMessage {
  std::string host;
  std::vector<std::string> argv;
  // The attempt of the ranks whose mpirun started the agent (in-place restarts);
  // absent from an agent that does not say.
  std::optional<int> attempt;
};
Result<RshOpenMessage> DecodeRshOpen(const Frame& frame);

// kRshExec (head -> node).
struct RshExecMessage {
  uint32_t session = 0;
  std::vector<std::string> argv;
};
Result<RshExecMessage> DecodeRshExec(const Frame& frame);

// kRshExit (node -> head -> agent).
struct RshExitMessage {
  uint32_t session = 0;
  int exit_code = 255;
  std::string error;
};
Result<RshExitMessage> DecodeRshExit(const Frame& frame);

// kRshClose (head -> node): the session id.
Result<uint32_t> DecodeRshClose(const Frame& frame);

// kUploadPlan (head -> node): a request for digests, or the final plan.
struct UploadPlanMessage {
  std::optional<std::vector<std::string>> need_digests;  // keys of the node's files
  std::map<std::string, std::string> uploads;            // key -> key to upload it as
};
Result<UploadPlanMessage> DecodeUploadPlan(const Frame& frame);

// kFinished (head -> node): the job's outcome, as far as a node reads it.
Result<JobOutcome> DecodeFinished(const Frame& frame);

// kRefused: the reason ("no reason given" when it has none).
Result<std::string> DecodeRefused(const Frame& frame);

// A key of the run's uploads from a peer: relative ("outputs/a.txt"), within
// PATH_MAX and NAME_MAX, with no "." or ".." component and no NUL.
bool IsSafeRunKey(std::string_view key);

}  // namespace trainrun
