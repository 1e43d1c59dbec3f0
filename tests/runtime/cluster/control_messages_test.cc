// Every message a peer can send, decoded as its receiver decodes it: a well-formed
// one comes back as typed values, and a wrong type, a missing field or a value out
// of range is an error naming the message type and the field. Nothing throws.
#include "runtime/cluster/control_messages.h"

#include <gtest/gtest.h>

#include "runtime/cluster/field_reader.h"
#include "runtime/cluster/rendezvous.h"

namespace trainrun {
namespace {

using nlohmann::json;

Frame F(MessageType type, const json& body) { return Frame{type, body.dump()}; }

// Decodes `body` as a `type` message, as its receiver would; the error or "".
std::string Decode(MessageType type, const json& body) {
  const Frame frame = F(type, body);
  Status s;
  switch (type) {
    case MessageType::kJoin: s = NodeJoin::FromJson(body).status(); break;
    case MessageType::kAssign: s = JobAssignment::FromJson(body).status(); break;
    case MessageType::kReady: s = DecodeReady(frame).status(); break;
    case MessageType::kStart:
    case MessageType::kPreflightPassed:
    case MessageType::kHeartbeat: s = DecodeEmpty(frame); break;
    case MessageType::kPreflight: s = DecodePreflight(frame).status(); break;
    case MessageType::kRankFailed: s = DecodeRankFailed(frame).status(); break;
    case MessageType::kNodeStopping:
    case MessageType::kStop: s = DecodeStop(frame).status(); break;
    case MessageType::kNodeResult: s = DecodeNodeResult(frame).status(); break;
    case MessageType::kManifest: s = DecodeManifest(frame).status(); break;
    case MessageType::kNodeDone: s = DecodeNodeDone(frame).status(); break;
    case MessageType::kRshOpen: s = DecodeRshOpen(frame).status(); break;
    case MessageType::kRshExec: s = DecodeRshExec(frame).status(); break;
    case MessageType::kRshExit: s = DecodeRshExit(frame).status(); break;
    case MessageType::kRshClose: s = DecodeRshClose(frame).status(); break;
    case MessageType::kUploadPlan: s = DecodeUploadPlan(frame).status(); break;
    case MessageType::kFinished: s = DecodeFinished(frame).status(); break;
    case MessageType::kRefused: s = DecodeRefused(frame).status(); break;
    case MessageType::kAttemptEnded: s = DecodeAttemptEnded(frame).status(); break;
    case MessageType::kAttemptVerdict: s = DecodeAttemptVerdict(frame).status(); break;
    default: ADD_FAILURE() << "no decoder for " << MessageTypeName(type);
  }
  return s.ok() ? "" : s.message();
}

struct Case {
  MessageType type;
  json body;
  std::string error;  // the whole message
};

json ValidJoin() {
  NodeJoin j;
  j.node_rank = 1;
  j.node_count = 2;
  j.host = "gpu-002";
  j.process_count = 8;
  j.job_digest = "abc";
  j.tf_ports = {2222};
  return j.ToJson();
}

json ValidAssign() {
  JobAssignment a;
  a.run_id = "run-1";
  a.world_size = 4;
  a.master_addr = "10.0.0.1";
  a.master_port = 29500;
  a.nodes = {NodeSlot{0, "h0", "10.0.0.1", "eth0", {}, 2, 0, 1, {}},
             NodeSlot{1, "h1", "10.0.0.2", "eth0", {}, 2, 2, 1, {}}};
  return a.ToJson();
}

json With(json body, const std::string& field, json value) {
  body[field] = std::move(value);
  return body;
}
json Without(json body, const std::string& field) {
  body.erase(field);
  return body;
}

// What the head receives: from nodes and from rsh agents.
TEST(ControlMessagesTest, HeadSideMessagesWithAWrongFieldAreRefusedNamingIt) {
  const json rank_failed = {{"rank", 5}, {"exitCode", 7}, {"reason", "exited"}, {"timeMs", 1}};
  const json result = NodeResult{}.ToJson();
  const std::vector<Case> cases = {
      {MessageType::kRankFailed, With(rank_failed, "rank", "abc"),
       "RankFailed: field \"rank\": expected an integer from 0 to 268435455, got a string"},
      {MessageType::kRankFailed, Without(rank_failed, "rank"),
       "RankFailed: field \"rank\": missing (expected an integer from 0 to 268435455)"},
      {MessageType::kRankFailed, With(rank_failed, "rank", -1),
       "RankFailed: field \"rank\": expected an integer from 0 to 268435455, got -1"},
      {MessageType::kRankFailed, With(rank_failed, "exitCode", 300),
       "RankFailed: field \"exitCode\": expected an integer from 0 to 255, got 300"},
      {MessageType::kRankFailed, With(rank_failed, "exitCode", 1.5),
       "RankFailed: field \"exitCode\": expected an integer from 0 to 255, got 1.5"},
      {MessageType::kRankFailed, With(rank_failed, "reason", json::array()),
       "RankFailed: field \"reason\": expected a string of at most 8388608 bytes, got an array"},
      {MessageType::kRankFailed, With(rank_failed, "timeMs", "now"),
       "RankFailed: field \"timeMs\": expected an integer from 0 to 9007199254740992, got a "
       "string"},
      {MessageType::kAttemptEnded,
       {{"attempt", 0}},
       "AttemptEnded: field \"attempt\": expected an integer from 1 to 1001, got 0"},
      {MessageType::kAttemptEnded, json::object(),
       "AttemptEnded: field \"attempt\": missing (expected an integer from 1 to 1001)"},
      {MessageType::kNodeStopping,
       {{"exitCode", "x"}},
       "NodeStopping: field \"exitCode\": expected an integer from 0 to 255, got a string"},
      {MessageType::kNodeStopping,
       {{"exitCode", 143}, {"reason", 5}},
       "NodeStopping: field \"reason\": expected a string of at most 8388608 bytes, got 5"},
      {MessageType::kNodeResult, With(result, "ranks", "x"),
       "NodeResult: field \"ranks\": expected an array of at most 4096 objects, got a string"},
      {MessageType::kNodeResult, With(result, "ranks", {{{"rank", 0}, {"exitCode", 256}}}),
       "NodeResult: field \"ranks[0].exitCode\": expected an integer from 0 to 255, got 256"},
      {MessageType::kNodeResult, With(result, "ranks", {{{"exitCode", 0}}}),
       "NodeResult: field \"ranks[0].rank\": missing (expected an integer from 0 to 268435455)"},
      {MessageType::kNodeResult, With(result, "failure", {{"rank", 1}, {"stderrTail", "x"}}),
       "NodeResult: field \"failure.stderrTail\": expected an array of at most 65536 strings of "
       "at most 8388608 bytes each, got a string"},
      {MessageType::kNodeResult, With(result, "failure", 3),
       "NodeResult: field \"failure\": expected an object, got 3"},
      {MessageType::kNodeResult, With(result, "warnings", {"ok", 2}),
       "NodeResult: field \"warnings\": expected an array of at most 65536 strings of at most "
       "8388608 bytes each, got 2 at [1]"},
      {MessageType::kManifest,
       {{"files", "x"}},
       "Manifest: field \"files\": expected an array of at most 1048576 objects, got a string"},
      {MessageType::kManifest,
       {{"files", {{{"size", 1}}}}},
       "Manifest: field \"files[0].key\": missing (expected a string of at most 4095 bytes)"},
      {MessageType::kManifest,
       {{"files", {{{"key", "outputs/a"}, {"size", -1}}}}},
       "Manifest: field \"files[0].size\": expected an integer from 0 to 9223372036854775807, "
       "got -1"},
      {MessageType::kManifest,
       {{"files", {{{"key", "../../etc/passwd"}}}}},
       "Manifest: field \"files[0].key\": expected a relative path without \".\" or \"..\" "
       "components"},
      {MessageType::kManifest,
       {{"digests", 42}},
       "Manifest: field \"digests\": expected an object of at most 1048576 strings of at most 64 "
       "bytes, got 42"},
      {MessageType::kManifest,
       {{"digests", {{"outputs/a", 42}}}},
       "Manifest: field \"digests.outputs/a\": expected a string of at most 64 bytes, got 42"},
      {MessageType::kNodeDone,
       {{"files", "x"}},
       "NodeDone: field \"files\": expected an integer from 0 to 9223372036854775807, got a "
       "string"},
      {MessageType::kNodeDone,
       {{"uploadErrors", "disk full"}},
       "NodeDone: field \"uploadErrors\": expected an array of at most 65536 strings of at most "
       "8388608 bytes each, got a string"},
      {MessageType::kRshExit,
       {{"session", -1}},
       "RshExit: field \"session\": expected an integer from 0 to 4294967295, got -1"},
      {MessageType::kRshExit,
       {{"exitCode", 0}},
       "RshExit: field \"session\": missing (expected an integer from 0 to 4294967295)"},
      {MessageType::kRshOpen,
       {{"host", "node1"}, {"argv", {"sh", 1}}},
       "RshOpen: field \"argv\": expected an array of at most 65536 strings of at most 131072 "
       "bytes each, got 1 at [1]"},
      {MessageType::kRshOpen,
       {{"argv", {"sh"}}},
       "RshOpen: field \"host\": missing (expected a string of at most 1020 bytes)"},
      {MessageType::kRshOpen,
       {{"host", "node1"}, {"argv", {"sh"}}, {"attempt", 0}},
       "RshOpen: field \"attempt\": expected an integer from 1 to 1001, got 0"},
      {MessageType::kJoin, With(ValidJoin(), "nodeRank", "1"),
       "Join: field \"nodeRank\": expected an integer from 0 to 65535, got a string"},
      {MessageType::kJoin, With(ValidJoin(), "processCount", 0),
       "Join: field \"processCount\": expected an integer from 1 to 4096, got 0"},
      {MessageType::kJoin, With(ValidJoin(), "host", std::string(300, 'h')),
       "Join: field \"host\": expected a string of at most 255 bytes, got 300 bytes"},
      {MessageType::kJoin, With(ValidJoin(), "tfPorts", {70000}),
       "Join: field \"tfPorts\": expected an array of at most 4096 integers from 0 to 65535, got "
       "70000 at [0]"},
      {MessageType::kJoin, Without(ValidJoin(), "nodeCount"),
       "Join: field \"nodeCount\": missing (expected an integer from 1 to 65536)"},
      {MessageType::kReady, json::array(), "Ready message: the payload is not a JSON object"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Decode(c.type, c.body), c.error) << MessageTypeName(c.type) << " " << c.body.dump();
  }
  // And what a well-behaved node sends is read.
  EXPECT_EQ(Decode(MessageType::kRankFailed, rank_failed), "");
  EXPECT_EQ(Decode(MessageType::kNodeResult, result), "");
  EXPECT_EQ(Decode(MessageType::kJoin, ValidJoin()), "");
  EXPECT_EQ(Decode(MessageType::kReady, json::object()), "");
}

// What a node receives from the head.
TEST(ControlMessagesTest, WorkerSideMessagesWithAWrongFieldAreRefusedNamingIt) {
  const json finished = {
      {"exitCode", 0}, {"status", "Completed"}, {"outcome", "succeeded"}, {"stopReason", ""}};
  json assign_bad_node = ValidAssign();
  assign_bad_node["nodes"][1]["firstRank"] = "2";
  json assign_overflow = ValidAssign();
  assign_overflow["nodes"][1]["processCount"] = 3;
  json assign_rank = ValidAssign();
  assign_rank["nodes"][1]["nodeRank"] = 7;
  const std::vector<Case> cases = {
      {MessageType::kAssign, With(ValidAssign(), "worldSize", "4"),
       "Assign: field \"worldSize\": expected an integer from 1 to 268435456, got a string"},
      {MessageType::kAssign, With(ValidAssign(), "nodes", {1, 2}),
       "Assign: field \"nodes[0]\": expected an object, got 1"},
      {MessageType::kAssign, assign_bad_node,
       "Assign: field \"nodes[1].firstRank\": expected an integer from 0 to 3, got a string"},
      {MessageType::kAssign, assign_overflow,
       "Assign: field \"nodes[1].processCount\": ranks 2 to 4 do not fit the world size 4"},
      {MessageType::kAssign, assign_rank,
       "Assign: field \"nodes[1].nodeRank\": expected an integer from 0 to 1, got 7"},
      {MessageType::kAssign, With(ValidAssign(), "runId", "../../etc"),
       "Assign: field \"runId\": expected 1-255 letters, digits, '_', '-' or '.', starting with "
       "a letter or digit"},
      {MessageType::kAssign, With(ValidAssign(), "masterPort", 70000),
       "Assign: field \"masterPort\": expected an integer from 0 to 65535, got 70000"},
      {MessageType::kStop,
       {{"exitCode", 256}},
       "Stop: field \"exitCode\": expected an integer from 0 to 255, got 256"},
      {MessageType::kStop,
       {{"reason", {{"a", 1}}}},
       "Stop: field \"reason\": expected a string of at most 8388608 bytes, got an object"},
      {MessageType::kUploadPlan,
       {{"needDigests", "outputs/a"}},
       "UploadPlan: field \"needDigests\": expected an array of at most 1048576 strings of at "
       "most 4095 bytes each, got a string"},
      {MessageType::kUploadPlan,
       {{"uploads", {{"outputs/a", 1}}}},
       "UploadPlan: field \"uploads.outputs/a\": expected a string of at most 4095 bytes, got 1"},
      {MessageType::kUploadPlan,
       {{"final", true}},
       "UploadPlan: field \"uploads\": missing (expected an object of at most 1048576 strings of "
       "at most 4095 bytes)"},
      {MessageType::kUploadPlan,
       {{"uploads", {{"outputs/a", "/etc/cron.d/x"}}}},
       "UploadPlan: field \"uploads\": expected relative paths without \".\" or \"..\" "
       "components as values"},
      {MessageType::kFinished, With(finished, "exitCode", "0"),
       "Finished: field \"exitCode\": expected an integer from 0 to 255, got a string"},
      {MessageType::kFinished, With(finished, "status", "Running"),
       "Finished: field \"status\": expected Completed, Failed or Canceled"},
      {MessageType::kFinished, With(finished, "failure", {{"rank", "x"}}),
       "Finished: field \"failure.rank\": expected an integer from -1 to 268435455, got a string"},
      {MessageType::kRshExec,
       {{"session", 1}, {"argv", "sh -c id"}},
       "RshExec: field \"argv\": expected an array of at most 65536 strings of at most 131072 "
       "bytes each, got a string"},
      {MessageType::kRshExec,
       {{"session", "1"}, {"argv", {"true"}}},
       "RshExec: field \"session\": expected an integer from 0 to 4294967295, got a string"},
      {MessageType::kRshClose,
       {{"session", 4294967296}},
       "RshClose: field \"session\": expected an integer from 0 to 4294967295, got 4294967296"},
      {MessageType::kRefused,
       {{"reason", false}},
       "Refused: field \"reason\": expected a string of at most 8388608 bytes, got false"},
      {MessageType::kStart, "x", "Start message: the payload is not a JSON object"},
      {MessageType::kAttemptVerdict,
       {{"attempt", 1}, {"restart", "yes"}, {"exitCode", 3}},
       "AttemptVerdict: field \"restart\": expected true or false, got a string"},
      {MessageType::kAttemptVerdict,
       {{"attempt", 1}, {"restart", true}, {"exitCode", 3}, {"failedRank", -2}},
       "AttemptVerdict: field \"failedRank\": expected an integer from -1 to 268435455, got -2"},
      {MessageType::kAssign, With(ValidAssign(), "attempt", 0),
       "Assign: field \"attempt\": expected an integer from 1 to 1001, got 0"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Decode(c.type, c.body), c.error) << MessageTypeName(c.type) << " " << c.body.dump();
  }
  EXPECT_EQ(Decode(MessageType::kAssign, ValidAssign()), "");
  EXPECT_EQ(Decode(MessageType::kFinished, finished), "");
  EXPECT_EQ(Decode(MessageType::kUploadPlan, {{"uploads", {{"outputs/a", "outputs/a.node1"}}}}),
            "");
}

// The head's verdict on an attempt, and the attempt a replacing node joins, come
// back as they were sent.
TEST(ControlMessagesTest, AttemptVerdictsAndTheJoinedAttemptRoundTrip) {
  AttemptVerdict v;
  v.attempt = 2;
  v.restart = true;
  v.wait_ms = 1500;
  v.why = "restart 2 of 3 in 1.5 s";
  v.outcome = "rank failed";
  v.exit_code = 3;
  v.reason = "rank 3 on node 1 (h1) exited with exit code 3";
  v.failed_rank = 3;
  v.failed_node_rank = 1;
  Result<AttemptVerdict> back = DecodeAttemptVerdict(F(MessageType::kAttemptVerdict, v.ToJson()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->attempt, 2);
  EXPECT_TRUE(back->restart);
  EXPECT_EQ(back->wait_ms, 1500);
  EXPECT_EQ(back->why, v.why);
  EXPECT_EQ(back->outcome, "rank failed");
  EXPECT_EQ(back->exit_code, 3);
  EXPECT_EQ(back->reason, v.reason);
  EXPECT_EQ(back->failed_rank, 3);
  EXPECT_EQ(back->failed_node_rank, 1);
  // An MPI job's attempt that mpirun itself ended (rank -1): found by a new user,
  // whose worker took the head's verdict for a malformed message and left the job.
  v.failed_rank = -1;
  v.failed_node_rank = 0;
  back = DecodeAttemptVerdict(F(MessageType::kAttemptVerdict, v.ToJson()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->failed_rank, -1);
  Result<int> ended = DecodeAttemptEnded(F(MessageType::kAttemptEnded, {{"attempt", 4}}));
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(*ended, 4);
  // Ready names the attempt after a node's first, so a stale one is told apart.
  Result<std::optional<int>> ready = DecodeReady(F(MessageType::kReady, {{"attempt", 3}}));
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(*ready, 3);
  Result<std::optional<int>> first_ready = DecodeReady(F(MessageType::kReady, json::object()));
  ASSERT_TRUE(first_ready.ok());
  EXPECT_FALSE(first_ready->has_value());
  EXPECT_FALSE(DecodeReady(F(MessageType::kReady, {{"attempt", 0}})).ok());

  Result<JobAssignment> first = JobAssignment::FromJson(ValidAssign());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->attempt, 1);
  EXPECT_FALSE(ValidAssign().contains("attempt"));
  Result<JobAssignment> later = JobAssignment::FromJson(With(ValidAssign(), "attempt", 3));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->attempt, 3);
}

TEST(ControlMessagesTest, PayloadsThatAreNotJsonOrNestTooDeepAreRefused) {
  for (const std::string& payload :
       {std::string("{\"rank\": "), std::string("\xff\xfe"), std::string(100, '[')}) {
    Result<RankFailedMessage> m = DecodeRankFailed(Frame{MessageType::kRankFailed, payload});
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("RankFailed message: the payload is not JSON"),
              std::string::npos)
        << m.status().message();
  }
  std::string deep = std::string(32, '[') + std::string(32, ']');
  EXPECT_TRUE(DecodeJsonPayload(Frame{MessageType::kRankFailed, "{\"a\":" + deep + "}"}).ok() ==
              false);  // 33 levels with the object
  std::string fits = std::string(31, '[') + std::string(31, ']');
  EXPECT_TRUE(DecodeJsonPayload(Frame{MessageType::kRankFailed, "{\"a\":" + fits + "}"}).ok());
}

TEST(ControlMessagesTest, TextFromPeersComesOutEscapedDataAsItWas) {
  Result<RankFailedMessage> failed = DecodeRankFailed(
      F(MessageType::kRankFailed, {{"rank", 1}, {"reason", "died\n\x1b[31mFORGED line"}}));
  ASSERT_TRUE(failed.ok()) << failed.status().message();
  EXPECT_EQ(failed->reason, "died\\n\\x1b[31mFORGED line");
  Result<NodeJoin> join = NodeJoin::FromJson(With(ValidJoin(), "host", "evil\r\n\x07host"));
  ASSERT_TRUE(join.ok());
  EXPECT_EQ(join->host, "evil\\r\\n\\x07host");
  EXPECT_EQ(join->Describe().find('\n'), std::string::npos);
  // An argument is data: the command runs with it as sent.
  Result<RshExecMessage> exec =
      DecodeRshExec(F(MessageType::kRshExec, {{"session", 3}, {"argv", {"printf", "a\nb"}}}));
  ASSERT_TRUE(exec.ok());
  EXPECT_EQ(exec->argv[1], "a\nb");
  // A key in an error is escaped too.
  EXPECT_EQ(Decode(MessageType::kManifest, {{"digests", {{"a\x1b[2J", 1}}}}),
            "Manifest: field \"digests.a\\x1b[2J\": expected a string of at most 64 bytes, got 1");
}

// A node's preflight verdict (kPreflight): the envelope is checked field by field;
// the report is free-form figures, and every key and string in it comes out escaped.
TEST(ControlMessagesTest, PreflightVerdictsAreCheckedAndTheirReportsEscaped) {
  const json failed = {{"passed", false},
                       {"exitCode", 75},
                       {"reason", "preflight: GPU 0000:35:00.0 (index 1): ecc: 3 errors"},
                       {"report", {{"nodeRank", 1}, {"failures", json::array()}}}};
  EXPECT_EQ(Decode(MessageType::kPreflight, failed), "");
  EXPECT_EQ(Decode(MessageType::kPreflight, {{"passed", true}}), "");
  EXPECT_EQ(Decode(MessageType::kPreflight, Without(failed, "passed")),
            "Preflight: field \"passed\": missing (expected true or false)");
  EXPECT_EQ(Decode(MessageType::kPreflight, With(failed, "exitCode", 256)),
            "Preflight: field \"exitCode\": expected an integer from 0 to 255, got 256");
  EXPECT_EQ(Decode(MessageType::kPreflight, With(failed, "exitCode", 0)),
            "Preflight: field \"passed\": false needs a non-zero \"exitCode\" and a \"reason\"");
  EXPECT_EQ(Decode(MessageType::kPreflight, Without(failed, "reason")),
            "Preflight: field \"passed\": false needs a non-zero \"exitCode\" and a \"reason\"");
  EXPECT_NE(Decode(MessageType::kPreflight, With(failed, "report", "x")), "");
  EXPECT_EQ(Decode(MessageType::kPreflightPassed, json::object()), "");

  Result<PreflightResult> m = DecodePreflight(
      F(MessageType::kPreflight,
        With(With(failed, "reason", "bad\n\x1b[31mline"), "report",
             {{"gpus", {{{"busId\x1b", "0000:35:00.0\r\nFORGED"}}}}, {"seconds", 1.5}})));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_FALSE(m->passed);
  EXPECT_EQ(m->exit_code, 75);
  EXPECT_EQ(m->reason, "bad\\n\\x1b[31mline");
  EXPECT_EQ(m->report["gpus"][0]["busId\\x1b"], "0000:35:00.0\\r\\nFORGED");
  EXPECT_EQ(m->report["seconds"], 1.5);
}

TEST(ControlMessagesTest, RunKeysFromPeersAreRelativeWithoutDotComponents) {
  for (const char* ok : {"outputs/a", "logs/x/y.txt", "outputs/.hidden", "outputs/a..b"}) {
    EXPECT_TRUE(IsSafeRunKey(ok)) << ok;
  }
  for (const char* bad :
       {"", "/etc/passwd", "outputs/../../x", "./a", "outputs//a", "outputs/", "..", "outputs/."}) {
    EXPECT_FALSE(IsSafeRunKey(bad)) << bad;
  }
  EXPECT_FALSE(IsSafeRunKey(std::string("outputs/a\0b", 11)));
  EXPECT_FALSE(IsSafeRunKey("outputs/" + std::string(300, 'a')));
}

}  // namespace
}  // namespace trainrun
