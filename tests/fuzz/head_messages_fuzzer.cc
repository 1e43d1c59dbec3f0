// libFuzzer target: every message a node or an rsh agent can send the head, decoded
// as HeadSession's handlers decode it (control_messages.h, NodeJoin::FromJson), then
// handed to what the handlers hand it to: the rendezvous book and assignment, the
// job's outcome, the output merge and the rsh relay. Those run on fakes of the
// head's state, without sockets.
//
// Besides "never crashes", what the head relays must be readable by its receiver:
// the assignment it builds from a Join, the upload plan from a Manifest, the final
// word (Finished) from a NodeResult, RshExec and RshExit. A message that the head
// accepts but turns into one a node refuses would fail the job for nothing.
//
// Input: byte 0 picks the message type (modulo the list below); the rest is the
// payload.
//
// Built by -DTRAINRUN_BUILD_FUZZERS=ON (scripts/fuzz.sh); corpus in
// corpus/head_messages.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "runtime/cluster/control_messages.h"
#include "runtime/cluster/job_outcome.h"
#include "runtime/cluster/output_merge.h"
#include "runtime/cluster/rendezvous.h"
#include "tests/fuzz/fuzz_check.h"

namespace trainrun {
namespace {

using fuzz::Check;
using fuzz::CheckEscaped;
using nlohmann::json;

constexpr MessageType kTypes[] = {
    MessageType::kJoin,         MessageType::kReady,        MessageType::kHeartbeat,
    MessageType::kRankFailed,   MessageType::kNodeStopping, MessageType::kNodeResult,
    MessageType::kManifest,     MessageType::kNodeDone,     MessageType::kRshExit,
    MessageType::kRshOpen,      MessageType::kRshData,      MessageType::kPreflight,
    MessageType::kAttemptEnded,
};

NodeJoin Head(int node_count) {
  NodeJoin head;
  head.node_rank = 0;
  head.node_count = node_count;
  head.host = "head";
  head.address = "10.0.0.1";
  head.process_count = 2;
  head.job_digest = "digest";
  return head;
}

// The head's outcome with `node` as node 1, and what it broadcasts of it.
void Decide(const NodeReport& node, std::vector<FailureEvent> events) {
  std::map<int, NodeReport> nodes;
  nodes[0].join = Head(2);
  nodes[0].result_in = nodes[0].done_in = true;
  nodes[1] = node;
  JobOutcome outcome = DecideJobOutcome(events, nodes, JobOutcome{}, {});
  json body = {{"exitCode", outcome.exit_code},
               {"status", RunStatusName(outcome.status)},
               {"outcome", outcome.outcome},
               {"stopReason", outcome.stop_reason}};
  if (outcome.failure) body["failure"] = FailureToJson(*outcome.failure);
  Result<JobOutcome> read = DecodeFinished(Frame{MessageType::kFinished, body.dump()});
  Check(read.ok());
  // And the stop the head broadcast before.
  if (!events.empty()) {
    json stop = {{"exitCode", events.front().exit_code}, {"reason", events.front().reason}};
    Check(DecodeStop(Frame{MessageType::kStop, stop.dump()}).ok());
  }
}

NodeReport JoinedNode() {
  NodeReport node;
  node.join = Head(2);
  node.join.node_rank = 1;
  node.join.host = "node1";
  return node;
}

void Handle(const Frame& frame) {
  switch (frame.type) {
    case MessageType::kJoin: {
      Result<json> body = DecodeJsonPayload(frame);
      if (!body.ok()) return;
      Result<NodeJoin> join = NodeJoin::FromJson(*body);
      if (!join.ok()) return;
      CheckEscaped(join->Describe());
      if (join->node_count > 64) join->node_count = 2;  // the book's size, not the test's
      RendezvousBook book(Head(join->node_count));
      if (!book.Add(*join).ok() || !book.complete()) return;
      JobAssignment a = book.Assign("run-1", "10.0.0.1", 29500);
      for (int rank : {0, join->node_rank}) {
        Result<JobAssignment> read = JobAssignment::FromJson(a.ToJson(rank));
        Check(read.ok());
        Check(read->nodes.size() == a.nodes.size());
      }
      (void)TfConfigFor(a, a.nodes[static_cast<size_t>(join->node_rank)].first_rank);
      return;
    }
    case MessageType::kReady:
    case MessageType::kHeartbeat: (void)DecodeEmpty(frame); return;
    case MessageType::kPreflight: {
      Result<PreflightResult> m = DecodePreflight(frame);
      if (!m.ok()) return;
      CheckEscaped(m->reason);
      Check(m->report.is_object());
      (void)m->report.dump();
      return;
    }
    case MessageType::kRankFailed: {
      Result<RankFailedMessage> m = DecodeRankFailed(frame);
      if (!m.ok()) return;
      CheckEscaped(m->reason);
      NodeReport node = JoinedNode();
      std::string reason =
          "rank " + std::to_string(m->rank) + " on " + node.join.Describe() + " " + m->reason;
      Decide(node, {{m->time_ms.value_or(1), m->exit_code, reason, 1, m->rank, false}});
      return;
    }
    case MessageType::kAttemptEnded: {
      Result<int> attempt = DecodeAttemptEnded(frame);
      if (attempt.ok()) Check(*attempt >= 1 && *attempt <= kMaxAttempts);
      return;
    }
    case MessageType::kNodeStopping: {
      Result<StopMessage> m = DecodeStop(frame);
      if (!m.ok()) return;
      CheckEscaped(m->reason);
      Decide(JoinedNode(), {{m->time_ms.value_or(1), m->exit_code, m->reason, 1, {}, false}});
      return;
    }
    case MessageType::kNodeResult: {
      Result<NodeResult> m = DecodeNodeResult(frame);
      if (!m.ok()) return;
      CheckEscaped(m->host);
      CheckEscaped(m->stop_reason);
      for (const std::string& w : m->warnings) CheckEscaped(w);
      if (m->failure) {
        CheckEscaped(m->failure->reason);
        for (const std::string& line : m->failure->stderr_tail) CheckEscaped(line);
      }
      NodeReport node = JoinedNode();
      node.result = *m;
      node.result.node_rank = 1;
      node.result_in = true;
      Decide(node, {});
      return;
    }
    case MessageType::kManifest: {
      Result<ManifestMessage> m = DecodeManifest(frame);
      if (!m.ok() || !m->files) return;
      NodeManifest theirs{1, *m->files};
      if (m->digests) {
        for (ManifestEntry& e : theirs.files) {
          auto d = m->digests->find(e.key);
          if (d != m->digests->end()) e.sha256 = d->second;
        }
      }
      NodeManifest mine{0, {{"outputs/model.pt", 17, ""}, {"logs/a.txt", 3, ""}}};
      std::map<int, std::set<std::string>> needed = DigestsNeeded({mine, theirs});
      json request = {
          {"needDigests", std::vector<std::string>(needed[1].begin(), needed[1].end())}};
      Check(DecodeUploadPlan(Frame{MessageType::kUploadPlan, request.dump()}).ok());
      MergePlan plan = PlanMerge({mine, theirs});
      json final_plan = {{"uploads", plan.uploads[1]}, {"final", true}};
      Check(DecodeUploadPlan(Frame{MessageType::kUploadPlan, final_plan.dump()}).ok());
      return;
    }
    case MessageType::kNodeDone: {
      Result<NodeDone> m = DecodeNodeDone(frame);
      if (!m.ok()) return;
      NodeReport node = JoinedNode();
      node.done = *m;
      node.done_in = node.result_in = true;
      Decide(node, {});
      return;
    }
    case MessageType::kRshExit: {
      Result<RshExitMessage> m = DecodeRshExit(frame);
      if (!m.ok()) return;
      json to_agent = {{"session", m->session}, {"exitCode", m->exit_code}, {"error", m->error}};
      Check(DecodeRshExit(Frame{MessageType::kRshExit, to_agent.dump()}).ok());
      return;
    }
    case MessageType::kRshOpen: {
      Result<RshOpenMessage> m = DecodeRshOpen(frame);
      if (!m.ok()) return;
      JobAssignment a;
      a.nodes = {NodeSlot{0, "head", "10.0.0.1", "eth0", {"10.0.0.1"}, 2, 0, 1, {}},
                 NodeSlot{1, "node1", "10.0.0.2", "eth0", {"10.0.0.2"}, 2, 2, 1, {}}};
      if (a.FindHost(m->host) == nullptr) return;
      json exec = {{"session", 1}, {"argv", m->argv}};
      Check(DecodeRshExec(Frame{MessageType::kRshExec, exec.dump()}).ok());
      return;
    }
    case MessageType::kRshData: {
      Result<RshChunk> chunk = DecodeRshData(frame);
      if (!chunk.ok()) return;
      std::string again = EncodeRshData(*chunk);
      Result<RshChunk> read =
          DecodeRshData(Frame{MessageType::kRshData, again.substr(kFrameHeaderSize)});
      Check(read.ok() && read->data == chunk->data && read->session == chunk->session);
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
