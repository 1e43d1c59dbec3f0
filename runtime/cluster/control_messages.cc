#include "runtime/cluster/control_messages.h"

#include <limits>

#include <fmt/format.h>

#include "base/input_limits.h"
#include "base/text.h"
#include "runtime/cluster/field_reader.h"

namespace trainrun {
namespace {

using nlohmann::json;
constexpr auto kOptional = Presence::kOptional;

// The payload as a JSON object, or the error naming the message type.
Result<json> Body(const Frame& frame) { return DecodeJsonPayload(frame); }

Status ReadRankRecord(const FieldReader& r, RankRecord* out) {
  TR_RETURN_IF_ERROR(r.Int("rank", 0, kMaxGlobalRank, &out->rank));
  TR_RETURN_IF_ERROR(r.Int("nodeRank", 0, kMaxNodeCount - 1, &out->node_rank, kOptional));
  TR_RETURN_IF_ERROR(r.Int("localRank", 0, kMaxProcessesPerNode - 1, &out->local_rank, kOptional));
  TR_RETURN_IF_ERROR(r.Int("pid", 0, kMaxPid, &out->pid, kOptional));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &out->exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Int("signal", 0, kMaxSignalNumber, &out->signal, kOptional));
  TR_RETURN_IF_ERROR(r.Double("seconds", 0, 1e12, &out->seconds, kOptional));
  return r.Bool("stoppedByTrainrun", &out->stopped_by_trainrun, kOptional);
}

// A failure record as a peer sends it (FailureToJson); rank -1 is a node's failure
// that no rank caused (a lost node).
Status ReadFailure(const FieldReader& r, FailureRecord* out) {
  TR_RETURN_IF_ERROR(r.Int("rank", -1, kMaxGlobalRank, &out->rank));
  TR_RETURN_IF_ERROR(r.Int("nodeRank", 0, kMaxNodeCount - 1, &out->node_rank, kOptional));
  TR_RETURN_IF_ERROR(r.Text("host", kMaxRelayedShortTextBytes, &out->host, kOptional));
  TR_RETURN_IF_ERROR(r.Int("pid", 0, kMaxPid, &out->pid, kOptional));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &out->exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Int("signal", 0, kMaxSignalNumber, &out->signal, kOptional));
  TR_RETURN_IF_ERROR(r.Text("reason", kMaxPeerTextBytes, &out->reason, kOptional));
  TR_RETURN_IF_ERROR(r.Text("hint", kMaxPeerTextBytes, &out->hint, kOptional));
  TR_RETURN_IF_ERROR(
      r.TextList("stderrTail", kMaxPeerListItems, kMaxPeerTextBytes, &out->stderr_tail, kOptional));
  TR_RETURN_IF_ERROR(r.Text("logFile", kMaxPathBytes, &out->log_file, kOptional));
  return Status::Ok();
}

Result<std::optional<FailureRecord>> ReadOptionalFailure(const FieldReader& r) {
  TR_ASSIGN_OR_RETURN(std::optional<FieldReader> failure, r.Object("failure", kOptional));
  if (!failure) return std::optional<FailureRecord>();
  FailureRecord f;
  TR_RETURN_IF_ERROR(ReadFailure(*failure, &f));
  return std::optional<FailureRecord>(std::move(f));
}

Result<uint32_t> ReadSession(const FieldReader& r) {
  uint32_t session = 0;
  TR_RETURN_IF_ERROR(r.Int("session", 0, std::numeric_limits<uint32_t>::max(), &session));
  return session;
}

}  // namespace

bool IsSafeRunKey(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.find('\0') != std::string_view::npos) return false;
  if (!CheckPathLength(key).ok()) return false;
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view part = key.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

Status DecodeEmpty(const Frame& frame) { return Body(frame).status(); }

Result<RankFailedMessage> DecodeRankFailed(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  RankFailedMessage m;
  TR_RETURN_IF_ERROR(r.Int("rank", 0, kMaxGlobalRank, &m.rank));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Int("signal", 0, kMaxSignalNumber, &m.signal, kOptional));
  TR_RETURN_IF_ERROR(r.Text("reason", kMaxPeerTextBytes, &m.reason, kOptional));
  TR_RETURN_IF_ERROR(r.Int("pid", 0, kMaxPid, &m.pid, kOptional));
  TR_RETURN_IF_ERROR(r.OptionalInt("timeMs", 0, kMaxTimeMs, &m.time_ms));
  return m;
}

Result<StopMessage> DecodeStop(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  StopMessage m;
  m.reason = frame.type == MessageType::kStop ? "stopped by the head" : "stopped";
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Text("reason", kMaxPeerTextBytes, &m.reason, kOptional));
  TR_RETURN_IF_ERROR(r.OptionalInt("timeMs", 0, kMaxTimeMs, &m.time_ms));
  return m;
}

Result<int> DecodeAttemptEnded(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  int attempt = 0;
  TR_RETURN_IF_ERROR(FieldReader(frame.type, body).Int("attempt", 1, kMaxAttempts, &attempt));
  return attempt;
}

Result<std::optional<int>> DecodeReady(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  std::optional<int> attempt;
  TR_RETURN_IF_ERROR(
      FieldReader(frame.type, body).OptionalInt("attempt", 1, kMaxAttempts, &attempt));
  return attempt;
}

Result<AttemptVerdict> DecodeAttemptVerdict(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  AttemptVerdict m;
  TR_RETURN_IF_ERROR(r.Int("attempt", 1, kMaxAttempts, &m.attempt));
  TR_RETURN_IF_ERROR(r.Bool("restart", &m.restart));
  // A day: the backoff's maximum is the user's, but no wait is longer than that.
  TR_RETURN_IF_ERROR(r.Int("waitMs", 0, int64_t{86400} * 1000, &m.wait_ms, kOptional));
  TR_RETURN_IF_ERROR(r.Text("why", kMaxPeerTextBytes, &m.why, kOptional));
  TR_RETURN_IF_ERROR(r.Text("outcome", kMaxShortTextBytes, &m.outcome, kOptional));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code));
  TR_RETURN_IF_ERROR(r.Text("reason", kMaxPeerTextBytes, &m.reason, kOptional));
  // -1: mpirun itself, in an MPI job (its failure is "rank -1", as in ReadFailure).
  TR_RETURN_IF_ERROR(r.OptionalInt("failedRank", -1, kMaxGlobalRank, &m.failed_rank));
  TR_RETURN_IF_ERROR(r.OptionalInt("failedNodeRank", 0, kMaxNodeCount - 1, &m.failed_node_rank));
  return m;
}

namespace {

// `value` with every key and string escaped (EscapeControl): a peer's free-form
// report can go to the console and run.json as it is.
json EscapedJson(const json& value) {
  if (value.is_string()) return EscapeControl(value.get<std::string>());
  if (value.is_array()) {
    json out = json::array();
    for (const json& item : value) out.push_back(EscapedJson(item));
    return out;
  }
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it) {
      out[EscapeControl(it.key())] = EscapedJson(it.value());
    }
    return out;
  }
  return value;
}

}  // namespace

Result<PreflightResult> DecodePreflight(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  PreflightResult m;
  TR_RETURN_IF_ERROR(r.Bool("passed", &m.passed));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Text("reason", kMaxPeerTextBytes, &m.reason, kOptional));
  if (!m.passed && (m.exit_code == 0 || m.reason.empty())) {
    return r.Error("passed", "false needs a non-zero \"exitCode\" and a \"reason\"");
  }
  TR_ASSIGN_OR_RETURN(std::optional<FieldReader> report, r.Object("report", kOptional));
  if (report) m.report = EscapedJson(body["report"]);
  return m;
}

Result<NodeResult> DecodeNodeResult(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  NodeResult m;
  TR_RETURN_IF_ERROR(r.Int("nodeRank", 0, kMaxNodeCount - 1, &m.node_rank, kOptional));
  TR_RETURN_IF_ERROR(r.Text("host", kMaxShortTextBytes, &m.host, kOptional));
  TR_RETURN_IF_ERROR(r.Text("outcome", kMaxShortTextBytes, &m.outcome, kOptional));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Text("stopReason", kMaxPeerTextBytes, &m.stop_reason, kOptional));
  TR_RETURN_IF_ERROR(r.Text("workdir", kMaxPathBytes, &m.workdir, kOptional));
  TR_ASSIGN_OR_RETURN(std::vector<FieldReader> ranks,
                      r.Objects("ranks", kMaxProcessesPerNode, kOptional));
  for (const FieldReader& rank : ranks) {
    RankRecord record;
    TR_RETURN_IF_ERROR(ReadRankRecord(rank, &record));
    m.ranks.push_back(record);
  }
  TR_ASSIGN_OR_RETURN(m.failure, ReadOptionalFailure(r));
  TR_RETURN_IF_ERROR(r.Int("failureTimeMs", 0, kMaxTimeMs, &m.failure_time_ms, kOptional));
  TR_RETURN_IF_ERROR(
      r.TextList("warnings", kMaxPeerListItems, kMaxPeerTextBytes, &m.warnings, kOptional));
  return m;
}

Result<ManifestMessage> DecodeManifest(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  ManifestMessage m;
  if (body.contains("files")) {
    TR_ASSIGN_OR_RETURN(std::vector<FieldReader> files,
                        r.Objects("files", kMaxManifestFiles, kOptional));
    m.files.emplace();
    m.files->reserve(files.size());
    for (const FieldReader& f : files) {
      ManifestEntry entry;
      TR_RETURN_IF_ERROR(f.String("key", kMaxPathBytes, &entry.key));
      if (!IsSafeRunKey(entry.key)) {
        return f.Error("key", "expected a relative path without \".\" or \"..\" components");
      }
      TR_RETURN_IF_ERROR(
          f.Int("size", 0, std::numeric_limits<int64_t>::max(), &entry.size, kOptional));
      m.files->push_back(std::move(entry));
    }
  }
  if (body.contains("digests")) {
    std::map<std::string, std::string> digests;
    TR_RETURN_IF_ERROR(
        r.StringMap("digests", kMaxManifestFiles, kMaxPathBytes, kMaxDigestBytes, &digests));
    m.digests = std::move(digests);
  }
  return m;
}

Result<NodeDone> DecodeNodeDone(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  NodeDone m;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  TR_RETURN_IF_ERROR(r.Int("files", 0, kMax, &m.files, kOptional));
  TR_RETURN_IF_ERROR(r.Int("bytes", 0, kMax, &m.bytes, kOptional));
  TR_RETURN_IF_ERROR(r.TextList("uploadErrors", kMaxPeerListItems, kMaxPeerTextBytes,
                                &m.upload_errors, kOptional));
  return m;
}

Result<RshOpenMessage> DecodeRshOpen(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  RshOpenMessage m;
  TR_RETURN_IF_ERROR(r.Text("host", kMaxRelayedShortTextBytes, &m.host));
  TR_RETURN_IF_ERROR(r.StringList("argv", kMaxArgvItems, kMaxArgBytes, &m.argv));
  TR_RETURN_IF_ERROR(r.OptionalInt("attempt", 1, kMaxAttempts, &m.attempt));
  return m;
}

Result<RshExecMessage> DecodeRshExec(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  RshExecMessage m;
  TR_ASSIGN_OR_RETURN(m.session, ReadSession(r));
  TR_RETURN_IF_ERROR(r.StringList("argv", kMaxArgvItems, kMaxArgBytes, &m.argv));
  return m;
}

Result<RshExitMessage> DecodeRshExit(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  RshExitMessage m;
  TR_ASSIGN_OR_RETURN(m.session, ReadSession(r));
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code, kOptional));
  TR_RETURN_IF_ERROR(r.Text("error", kMaxPeerTextBytes, &m.error, kOptional));
  return m;
}

Result<uint32_t> DecodeRshClose(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  return ReadSession(FieldReader(frame.type, body));
}

Result<UploadPlanMessage> DecodeUploadPlan(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  UploadPlanMessage m;
  if (body.contains("needDigests")) {
    std::vector<std::string> keys;
    TR_RETURN_IF_ERROR(r.StringList("needDigests", kMaxManifestFiles, kMaxPathBytes, &keys));
    m.need_digests = std::move(keys);
    return m;
  }
  TR_RETURN_IF_ERROR(
      r.StringMap("uploads", kMaxManifestFiles, kMaxPathBytes, kMaxPathBytes, &m.uploads));
  for (const auto& [key, as] : m.uploads) {
    if (!IsSafeRunKey(as)) {
      return r.Error("uploads",
                     "expected relative paths without \".\" or \"..\" components as values");
    }
  }
  return m;
}

Result<JobOutcome> DecodeFinished(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  FieldReader r(frame.type, body);
  JobOutcome m;
  TR_RETURN_IF_ERROR(r.Int("exitCode", 0, kMaxExitCode, &m.exit_code));
  std::string status = "Failed";
  TR_RETURN_IF_ERROR(r.String("status", kMaxShortTextBytes, &status, kOptional));
  if (!ParseRunStatus(status, &m.status) || !IsFinal(m.status)) {
    return r.Error("status", "expected Completed, Failed or Canceled");
  }
  TR_RETURN_IF_ERROR(r.Text("outcome", kMaxRelayedShortTextBytes, &m.outcome, kOptional));
  TR_RETURN_IF_ERROR(r.Text("stopReason", kMaxPeerTextBytes, &m.stop_reason, kOptional));
  TR_ASSIGN_OR_RETURN(m.failure, ReadOptionalFailure(r));
  return m;
}

Result<std::string> DecodeRefused(const Frame& frame) {
  TR_ASSIGN_OR_RETURN(json body, Body(frame));
  std::string reason = "no reason given";
  TR_RETURN_IF_ERROR(
      FieldReader(frame.type, body).Text("reason", kMaxPeerTextBytes, &reason, kOptional));
  return reason;
}

}  // namespace trainrun
