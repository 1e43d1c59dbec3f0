#include "runtime/cluster/control_protocol.h"

#include <fmt/format.h>

#include "base/json_depth.h"

namespace trainrun {
namespace {

constexpr char kMagic[4] = {'T', 'R', 'N', 'C'};

void PutU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>((v >> 24) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

uint32_t GetU32(const char* p) {
  auto b = [p](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

}  // namespace

bool IsKnownMessageType(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kHello:
    case MessageType::kChallenge:
    case MessageType::kAuth:
    case MessageType::kWelcome:
    case MessageType::kRefused:
    case MessageType::kJoin:
    case MessageType::kAssign:
    case MessageType::kReady:
    case MessageType::kStart:
    case MessageType::kPreflight:
    case MessageType::kPreflightPassed:
    case MessageType::kHeartbeat:
    case MessageType::kRankFailed:
    case MessageType::kNodeStopping:
    case MessageType::kStop:
    case MessageType::kWorkersDone:
    case MessageType::kStopServers:
    case MessageType::kAttemptEnded:
    case MessageType::kAttemptVerdict:
    case MessageType::kNodeResult:
    case MessageType::kManifest:
    case MessageType::kUploadPlan:
    case MessageType::kNodeDone:
    case MessageType::kFinished:
    case MessageType::kRshOpen:
    case MessageType::kRshExec:
    case MessageType::kRshData:
    case MessageType::kRshExit:
    case MessageType::kRshClose: return true;
  }
  return false;
}

std::string MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello: return "Hello";
    case MessageType::kChallenge: return "Challenge";
    case MessageType::kAuth: return "Auth";
    case MessageType::kWelcome: return "Welcome";
    case MessageType::kRefused: return "Refused";
    case MessageType::kJoin: return "Join";
    case MessageType::kAssign: return "Assign";
    case MessageType::kReady: return "Ready";
    case MessageType::kStart: return "Start";
    case MessageType::kPreflight: return "Preflight";
    case MessageType::kPreflightPassed: return "PreflightPassed";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kRankFailed: return "RankFailed";
    case MessageType::kNodeStopping: return "NodeStopping";
    case MessageType::kStop: return "Stop";
    case MessageType::kWorkersDone: return "WorkersDone";
    case MessageType::kStopServers: return "StopServers";
    case MessageType::kAttemptEnded: return "AttemptEnded";
    case MessageType::kAttemptVerdict: return "AttemptVerdict";
    case MessageType::kNodeResult: return "NodeResult";
    case MessageType::kManifest: return "Manifest";
    case MessageType::kUploadPlan: return "UploadPlan";
    case MessageType::kNodeDone: return "NodeDone";
    case MessageType::kFinished: return "Finished";
    case MessageType::kRshOpen: return "RshOpen";
    case MessageType::kRshExec: return "RshExec";
    case MessageType::kRshData: return "RshData";
    case MessageType::kRshExit: return "RshExit";
    case MessageType::kRshClose: return "RshClose";
  }
  return fmt::format("type {}", static_cast<int>(type));
}

std::string EncodeFrame(MessageType type, std::string_view payload) {
  std::string out;
  out.reserve(kFrameHeaderSize + payload.size());
  out.append(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kControlProtocolVersion));
  out.push_back(static_cast<char>(type));
  out.push_back('\0');
  out.push_back('\0');
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

std::string EncodeJsonFrame(MessageType type, const nlohmann::json& body) {
  // Invalid UTF-8 (a host name, an error message) is replaced, never thrown on.
  return EncodeFrame(type, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<nlohmann::json> DecodeJsonPayload(const Frame& frame) {
  JsonDepthCheck depth(kMaxJsonDepth);
  if (!nlohmann::json::sax_parse(frame.payload, &depth, nlohmann::json::input_format_t::json,
                                 /*strict=*/true, /*ignore_comments=*/false)) {
    return InvalidArgumentError(
        fmt::format("{} message: the payload is not JSON, or nests deeper than {} levels",
                    MessageTypeName(frame.type), kMaxJsonDepth));
  }
  nlohmann::json body = nlohmann::json::parse(frame.payload, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return InvalidArgumentError(
        fmt::format("{} message: the payload is not a JSON object", MessageTypeName(frame.type)));
  }
  return body;
}

std::string EncodeRshData(const RshChunk& chunk) {
  std::string payload;
  payload.reserve(5 + chunk.data.size());
  PutU32(&payload, chunk.session);
  payload.push_back(static_cast<char>(chunk.stream));
  payload.append(chunk.data);
  return EncodeFrame(MessageType::kRshData, payload);
}

Result<RshChunk> DecodeRshData(const Frame& frame) {
  if (frame.type != MessageType::kRshData || frame.payload.size() < 5) {
    return InvalidArgumentError("RshData message: shorter than its 5-byte header");
  }
  RshChunk chunk;
  chunk.session = GetU32(frame.payload.data());
  chunk.stream = static_cast<uint8_t>(frame.payload[4]);
  if (chunk.stream > 2) {
    return InvalidArgumentError(
        fmt::format("RshData message: stream {} is not 0, 1 or 2", static_cast<int>(chunk.stream)));
  }
  chunk.data = frame.payload.substr(5);
  return chunk;
}

void FrameParser::Feed(std::string_view data) {
  if (!error_.empty()) return;
  // Drop what was consumed before growing, so the buffer stays about one frame.
  if (offset_ > 0 && offset_ >= buffer_.size() / 2) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(data);
}

FrameParser::State FrameParser::Fail(std::string error) {
  error_ = std::move(error);
  buffer_.clear();
  offset_ = 0;
  return State::kMalformed;
}

FrameParser::State FrameParser::Next(Frame* frame) {
  if (!error_.empty()) return State::kMalformed;
  const size_t available = buffer_.size() - offset_;
  const char* p = buffer_.data() + offset_;
  // Check what has arrived of the header byte by byte, so garbage is refused at
  // once rather than after 12 bytes.
  for (size_t i = 0; i < std::min(available, sizeof(kMagic)); ++i) {
    if (p[i] != kMagic[i]) return Fail("not a trainrun control frame (bad magic)");
  }
  if (available > 4 && static_cast<uint8_t>(p[4]) != kControlProtocolVersion) {
    return Fail(fmt::format(
        "control protocol version {} is not supported (this "
        "trainrun speaks {})",
        static_cast<int>(static_cast<uint8_t>(p[4])), static_cast<int>(kControlProtocolVersion)));
  }
  if (available > 5 && !IsKnownMessageType(static_cast<uint8_t>(p[5]))) {
    return Fail(
        fmt::format("unknown message type {}", static_cast<int>(static_cast<uint8_t>(p[5]))));
  }
  if (available > 7 && (p[6] != 0 || p[7] != 0)) return Fail("reserved header bytes are not zero");
  if (available < kFrameHeaderSize) return State::kNeedMore;
  const uint32_t length = GetU32(p + 8);
  if (length > max_payload_) {
    return Fail(fmt::format("{} frame of {} bytes is larger than the limit of {} bytes",
                            MessageTypeName(static_cast<MessageType>(p[5])), length, max_payload_));
  }
  const size_t tag_size = incoming_ ? kFrameTagSize : 0;
  if (available - kFrameHeaderSize < length + tag_size) return State::kNeedMore;
  const auto type = static_cast<MessageType>(p[5]);
  if (incoming_ &&
      !incoming_->Verify(std::string_view(p, kFrameHeaderSize + length),
                         std::string_view(p + kFrameHeaderSize + length, kFrameTagSize))) {
    authentication_failed_ = true;
    return Fail(
        fmt::format("frame {} ({}) failed authentication: it was altered, injected, replayed or "
                    "reordered, or a frame before it was dropped, by someone without the job token",
                    incoming_->sequence(), MessageTypeName(type)));
  }
  frame->type = type;
  frame->payload.assign(p + kFrameHeaderSize, length);
  offset_ += kFrameHeaderSize + length + tag_size;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return State::kFrame;
}

}  // namespace trainrun
