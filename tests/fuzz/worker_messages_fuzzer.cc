// libFuzzer target: every message the head can send a node, decoded as
// WorkerSession's handlers (and the rsh agent's) decode it (control_messages.h,
// JobAssignment::FromJson), then handed to what the handlers hand it to, on fakes of
// the node's state: the assignment as the run reads it, the upload plan applied to
// a list of files, the final word, an rsh session.
//
// Besides "never crashes": an assignment that is accepted describes this node
// within the world size; an upload plan only names relative keys; text meant for
// people has no control characters left.
//
// Input: byte 0 picks the message type (modulo the list below); the rest is the
// payload.
//
// Built by -DTRAINRUN_BUILD_FUZZERS=ON (scripts/fuzz.sh); corpus in
// corpus/worker_messages.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/rendezvous.h"
#include "tests/fuzz/fuzz_check.h"

namespace trainrun {
namespace {

using fuzz::Check;
using fuzz::CheckEscaped;
using nlohmann::json;

constexpr MessageType kTypes[] = {
    MessageType::kAssign,         MessageType::kStart,      MessageType::kHeartbeat,
    MessageType::kStop,           MessageType::kUploadPlan, MessageType::kFinished,
    MessageType::kRshExec,        MessageType::kRshData,    MessageType::kRshClose,
    MessageType::kRefused,        MessageType::kRshExit,    MessageType::kPreflightPassed,
    MessageType::kAttemptVerdict,
};

constexpr int kThisNode = 1;

void Handle(const Frame& frame) {
  switch (frame.type) {
    case MessageType::kAssign: {
      Result<json> body = DecodeJsonPayload(frame);
      if (!body.ok()) return;
      Result<JobAssignment> a = JobAssignment::FromJson(*body);
      if (!a.ok()) return;
      // WorkerSession::Rendezvous and ClusterRun::Join.
      if (a->nodes.size() <= static_cast<size_t>(kThisNode)) return;
      for (const NodeSlot& n : a->nodes) {
        Check(n.first_rank >= 0 && int64_t{n.first_rank} + n.process_count <= a->world_size);
        CheckEscaped(n.host);
      }
      const NodeSlot& me = a->nodes[kThisNode];
      (void)TfConfigFor(*a, me.first_rank);
      (void)a->FindHost(me.host);
      return;
    }
    case MessageType::kStart:
    case MessageType::kPreflightPassed:
    case MessageType::kHeartbeat: (void)DecodeEmpty(frame); return;
    case MessageType::kStop: {
      Result<StopMessage> m = DecodeStop(frame);
      if (m.ok()) CheckEscaped(m->reason);
      return;
    }
    case MessageType::kAttemptVerdict: {
      Result<AttemptVerdict> m = DecodeAttemptVerdict(frame);
      if (!m.ok()) return;
      Check(m->attempt >= 1 && m->wait_ms >= 0 && m->exit_code >= 0 && m->exit_code <= 255);
      CheckEscaped(m->reason);
      CheckEscaped(m->why);
      return;
    }
    case MessageType::kUploadPlan: {
      Result<UploadPlanMessage> m = DecodeUploadPlan(frame);
      if (!m.ok() || m->need_digests) return;
      // WorkerSession::MergeUploads.
      const std::string prefix = "e/run-1/";
      for (const std::string key : {"outputs/model.pt", "logs/a.txt"}) {
        auto as = m->uploads.find(key);
        if (as == m->uploads.end()) continue;
        Check(IsSafeRunKey(as->second));
        Check((prefix + as->second).find("/../") == std::string::npos);
      }
      return;
    }
    case MessageType::kFinished: {
      Result<JobOutcome> m = DecodeFinished(frame);
      if (!m.ok()) return;
      Check(m->exit_code >= 0 && m->exit_code <= 255);
      CheckEscaped(m->stop_reason);
      if (m->failure) {
        CheckEscaped(m->failure->host);
        CheckEscaped(m->failure->reason);
        for (const std::string& line : m->failure->stderr_tail) CheckEscaped(line);
      }
      return;
    }
    case MessageType::kRshExec: {
      Result<RshExecMessage> m = DecodeRshExec(frame);
      if (m.ok()) Check(m->argv.size() <= kMaxArgvItems);
      return;
    }
    case MessageType::kRshData: (void)DecodeRshData(frame); return;
    case MessageType::kRshClose: (void)DecodeRshClose(frame); return;
    case MessageType::kRefused: {
      Result<std::string> reason = DecodeRefused(frame);
      if (reason.ok()) CheckEscaped(*reason);
      return;
    }
    case MessageType::kRshExit: {  // what the rsh agent reads
      Result<RshExitMessage> m = DecodeRshExit(frame);
      if (m.ok()) CheckEscaped(m->error);
      return;
    }
    default: return;
  }
}

}  // namespace
}  // namespace trainrun

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trainrun;
  if (size < 1 || size > kMaxControlPayload) return 0;
  const MessageType type = kTypes[data[0] % (sizeof(kTypes) / sizeof(kTypes[0]))];
  Handle(Frame{type, std::string(reinterpret_cast<const char*>(data + 1), size - 1)});
  return 0;
}
