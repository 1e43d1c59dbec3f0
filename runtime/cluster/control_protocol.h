// The control plane's wire format: how trainrun processes of one job talk.
//
// Every message is one frame:
//
// clang-format off
//   offset  size  field
//   0       4     magic "TRNC" (0x54 0x52 0x4E 0x43)
//   4       1     protocol version, kControlProtocolVersion
//   5       1     message type (MessageType below)
//   6       2     reserved, 0
//   8       4     payload length n in bytes, unsigned, network byte order (big-endian)
//   12      n     payload
//   12+n    32    tag, only after the handshake (not counted in n):
//                 HMAC-SHA256(direction key, sequence | bytes 0 to 12+n)
//
// Payloads are UTF-8 JSON objects, except kRshData, which is binary:
//   4 bytes session id (big-endian), 1 byte stream (0 stdin, 1 stdout, 2 stderr),
//   then the bytes.
// clang-format on
//
// The length is checked against the receiver's limit before anything is allocated
// for the payload: kMaxUnauthenticatedPayload until the peer has proved it knows
// the job token, kMaxControlPayload after. A frame with a wrong magic, version,
// type, reserved field or length is malformed and the connection is closed; the
// parser never needs more than the header to tell.
//
// A connection begins with the handshake of control_auth.h (kHello, kChallenge,
// kAuth, kWelcome or kRefused, all without a tag); nothing else is accepted
// before it completes. From the frame after kAuth (client to head) and after
// kWelcome (head to client) on, every frame carries the tag: the direction key
// is a session key derived from the job token and both handshake nonces, and the
// sequence number (8 bytes, big-endian, never sent) counts the frames sent in
// that direction since the handshake, from 0. A frame whose tag is wrong was
// injected, altered, replayed, reordered, reflected or follows a dropped frame:
// the receiver closes the connection (FrameParser::Authenticate).
//
// Version 1 had no tags; a version 1 peer is refused at its first frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "runtime/cluster/control_auth.h"

namespace trainrun {

// How often the control server and client loops wake for heartbeats and timeouts
// when nothing arrives.
constexpr std::chrono::milliseconds kControlTick{100};

constexpr uint8_t kControlProtocolVersion = 2;
constexpr size_t kFrameHeaderSize = 12;
constexpr size_t kFrameTagSize = 32;
constexpr size_t kMaxUnauthenticatedPayload = 4 << 10;
constexpr size_t kMaxControlPayload = 16 << 20;
// JSON payloads nest at most this deep (the messages need three levels).
constexpr size_t kMaxJsonDepth = 32;

enum class MessageType : uint8_t {
  // Handshake (control_auth.h).
  kHello = 1,      // client -> head: role, node rank, client nonce
  kChallenge = 2,  // head -> client: head nonce
  kAuth = 3,       // client -> head: the client's proof
  kWelcome = 4,    // head -> client: accepted, with the head's proof
  kRefused = 5,    // either way: why the connection is refused; then close
  // Rendezvous (rendezvous.h).
  kJoin = 10,    // node -> head: host, addresses, process count, job fingerprint
  kAssign = 11,  // head -> node: run id, ranks, master address and port, interface
  kReady = 12,   // node -> head: prepared (snapshot, data), ready to start
  kStart = 13,   // head -> node: every node is ready, start the ranks
  // Preflight (README "Preflight"), between Start and the ranks, when the job has one.
  kPreflight = 14,        // node -> head: its preflight passed or failed, and its report
  kPreflightPassed = 15,  // head -> node: every node's passed, start the ranks
  // Watching each other.
  kHeartbeat = 20,     // both ways, every heartbeat interval
  kRankFailed = 21,    // node -> head: a local rank failed (the root cause on that node)
  kNodeStopping = 22,  // node -> head: this node stops for its own reason
                       // (cancel, timeout, error)
  kStop = 23,          // head -> node: stop the ranks, with the job's exit code and reason
  // Jobs with parameter servers (runtime/process/supervisor.h, server ranks).
  kWorkersDone = 24,  // node -> head: every non-server rank of the node exited 0
  kStopServers = 25,  // head -> node: every node's did: stop the servers, the job succeeded
  // In-place restarts (README "In-place restarts"): after an attempt, before Ready/Start.
  kAttemptEnded = 26,    // node -> head: its ranks of the attempt have all ended
  kAttemptVerdict = 27,  // head -> node: the attempt's outcome; restart or finalize
  // Finalizing together.
  kNodeResult = 30,  // node -> head: its ranks' results and its root-cause failure
  kManifest = 31,    // node -> head: the files it would upload to outputs/ and logs/
  kUploadPlan = 32,  // head -> node: which of them to upload, and under which names
  kNodeDone = 33,    // node -> head: uploads finished (errors, counts)
  kFinished = 34,    // head -> node: the final status and exit code of the job
  // MPI's remote launch agent (`trainrun rsh`).
  kRshOpen = 40,   // rsh agent -> head: start argv on host
  kRshExec = 41,   // head -> node: start argv for session id
  kRshData = 42,   // any direction: a chunk of a session's stdin, stdout or stderr
  kRshExit = 43,   // node -> head -> agent: the session's process ended
  kRshClose = 44,  // head -> node: the agent went away, stop the session's process
};

// "Hello", "RankFailed"...; "type 77" for unknown values.
std::string MessageTypeName(MessageType type);
bool IsKnownMessageType(uint8_t type);

struct Frame {
  MessageType type = MessageType::kHeartbeat;
  std::string payload;
};

// The bytes of one frame, without a tag (FrameAuthenticator::Seal appends it).
// `payload` must not exceed kMaxControlPayload.
std::string EncodeFrame(MessageType type, std::string_view payload);
// A frame whose payload is `body` as compact JSON.
std::string EncodeJsonFrame(MessageType type, const nlohmann::json& body);

// The payload as a JSON object; kInvalidArgument naming the message type when
// it is not valid JSON, nests deeper than kMaxJsonDepth or is not an object. Never
// throws. What the object holds is for control_messages.h to check.
Result<nlohmann::json> DecodeJsonPayload(const Frame& frame);

// kRshData payloads.
struct RshChunk {
  uint32_t session = 0;
  uint8_t stream = 0;  // 0 stdin, 1 stdout, 2 stderr
  std::string data;
};
std::string EncodeRshData(const RshChunk& chunk);
Result<RshChunk> DecodeRshData(const Frame& frame);

// Turns a byte stream into frames. Feed it what arrives, then call Next until
// it says kNeedMore. Once it said kMalformed it stays malformed.
class FrameParser {
 public:
  enum class State { kFrame, kNeedMore, kMalformed };

  explicit FrameParser(size_t max_payload = kMaxUnauthenticatedPayload)
      : max_payload_(max_payload) {}

  // The largest payload accepted from now on.
  void set_max_payload(size_t max_payload) { max_payload_ = max_payload; }

  // From the next frame on, every frame must end with a tag that `incoming`
  // accepts (the peer's direction key); the first that does not is kMalformed,
  // with authentication_failed() true. Call once, when the handshake succeeded.
  void Authenticate(std::unique_ptr<FrameAuthenticator> incoming) {
    incoming_ = std::move(incoming);
  }
  bool authentication_failed() const { return authentication_failed_; }

  void Feed(std::string_view data);

  // kFrame: *frame holds the next frame. kNeedMore: a frame is incomplete (or
  // nothing is buffered). kMalformed: error() says why.
  State Next(Frame* frame);

  const std::string& error() const { return error_; }
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  State Fail(std::string error);

  size_t max_payload_;
  std::unique_ptr<FrameAuthenticator> incoming_;
  bool authentication_failed_ = false;
  std::string buffer_;
  size_t offset_ = 0;  // consumed bytes at the front of buffer_
  std::string error_;
};

}  // namespace trainrun
