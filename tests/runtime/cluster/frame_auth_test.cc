// Every frame after the handshake carries a tag over its header and payload, keyed
// per direction and counted per direction (control_protocol.h): a frame that was
// altered, replayed, reordered, sent after a dropped one, reflected or sealed with
// the other direction's key is refused by the parser, and good frames pass.
#include <gtest/gtest.h>

#include "base/digest.h"
#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_protocol.h"

namespace trainrun {
namespace {

using nlohmann::json;
using State = FrameParser::State;

// The keys both sides of one real handshake derive.
struct Session {
  SessionKeys client, server;
};

Session Handshake(const std::string& token = "a job token of more than 16 chars") {
  ServerHandshake server([token](const std::string&) { return std::optional<std::string>(token); });
  ClientHandshake client(token, kRoleNode, 1);
  Result<json> challenge = server.OnHello(client.Hello());
  EXPECT_TRUE(challenge.ok());
  Result<json> auth = client.OnChallenge(*challenge);
  EXPECT_TRUE(auth.ok());
  Result<json> welcome = server.OnAuth(*auth);
  EXPECT_TRUE(welcome.ok());
  EXPECT_TRUE(client.OnWelcome(*welcome).ok());
  return {client.session_keys(), server.session_keys()};
}

// What a node sends the head, sealed in order.
std::vector<std::string> Sealed(const std::string& key, int count) {
  FrameAuthenticator out(key);
  std::vector<std::string> frames;
  for (int i = 0; i < count; ++i) {
    std::string frame = EncodeJsonFrame(MessageType::kHeartbeat, {{"n", i}});
    out.Seal(&frame);
    frames.push_back(frame);
  }
  return frames;
}

// A head-side parser for the node's frames.
FrameParser Receiver(const std::string& key) {
  FrameParser parser(kMaxControlPayload);
  parser.Authenticate(std::make_unique<FrameAuthenticator>(key));
  return parser;
}

// Feeds `bytes` and reads frames until the parser needs more or refuses; the
// payloads read, then "!" + the error if it refused.
std::vector<std::string> Read(FrameParser& parser, const std::string& bytes) {
  parser.Feed(bytes);
  std::vector<std::string> seen;
  Frame frame;
  while (true) {
    State state = parser.Next(&frame);
    if (state == State::kNeedMore) break;
    if (state == State::kMalformed) {
      seen.push_back("!" + parser.error());
      break;
    }
    seen.push_back(frame.payload);
  }
  return seen;
}

TEST(FrameAuthTest, BothSidesDeriveTheSameKeysOnePerDirectionFreshPerConnection) {
  Session a = Handshake();
  EXPECT_EQ(a.client.client_to_head, a.server.client_to_head);
  EXPECT_EQ(a.client.head_to_client, a.server.head_to_client);
  EXPECT_EQ(a.client.client_to_head.size(), 32u);
  EXPECT_NE(a.client.client_to_head, a.client.head_to_client);
  Session b = Handshake();  // fresh nonces: a recorded session's keys are useless
  EXPECT_NE(a.client.client_to_head, b.client.client_to_head);
  EXPECT_NE(a.client.head_to_client, b.client.head_to_client);
}

TEST(FrameAuthTest, TheTagIsTheHmacOfTheSequenceHeaderAndPayload) {
  const std::string key(32, 'k');
  FrameAuthenticator out(key);
  for (uint64_t sequence : {0, 1}) {
    const std::string frame = EncodeFrame(MessageType::kStop, R"({"exitCode":1})");
    std::string sealed = frame;
    out.Seal(&sealed);
    ASSERT_EQ(sealed.size(), frame.size() + kFrameTagSize);
    std::string counter(7, '\0');
    counter.push_back(static_cast<char>(sequence));
    EXPECT_EQ(sealed.substr(frame.size()), HmacSha256(key, counter + frame)) << sequence;
  }
  EXPECT_EQ(out.sequence(), 2u);
}

TEST(FrameAuthTest, GoodFramesPassInOrderAlsoByteByByte) {
  Session s = Handshake();
  std::vector<std::string> frames = Sealed(s.client.client_to_head, 3);
  FrameParser parser = Receiver(s.server.client_to_head);
  std::string all = frames[0] + frames[1] + frames[2];
  std::vector<std::string> seen;
  for (char c : all) {
    for (std::string& payload : Read(parser, std::string(1, c))) seen.push_back(payload);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{R"({"n":0})", R"({"n":1})", R"({"n":2})"}));
  EXPECT_FALSE(parser.authentication_failed());
}

TEST(FrameAuthTest, AnyFlippedByteInHeaderPayloadOrTagIsRefused) {
  Session s = Handshake();
  const std::string frame = Sealed(s.client.client_to_head, 1)[0];
  int refused_as_unauthentic = 0;
  for (size_t i = 0; i < frame.size(); ++i) {
    std::string tampered = frame;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    FrameParser parser = Receiver(s.server.client_to_head);
    std::vector<std::string> seen = Read(parser, tampered);
    // A flipped length byte may leave the parser waiting for more; a flipped
    // magic, version or type is malformed at once; everything else fails the tag.
    if (seen.empty()) {
      EXPECT_TRUE(i >= 8 && i < 12) << "byte " << i;
      continue;
    }
    ASSERT_EQ(seen.size(), 1u) << "byte " << i;
    EXPECT_EQ(seen[0][0], '!') << "byte " << i << " was accepted";
    refused_as_unauthentic += parser.authentication_failed() ? 1 : 0;
  }
  // Every byte of the payload and of the tag.
  EXPECT_GE(refused_as_unauthentic, static_cast<int>(frame.size() - kFrameHeaderSize));
}

TEST(FrameAuthTest, AReplayedFrameIsRefused) {
  Session s = Handshake();
  std::vector<std::string> frames = Sealed(s.client.client_to_head, 2);
  FrameParser parser = Receiver(s.server.client_to_head);
  std::vector<std::string> seen = Read(parser, frames[0] + frames[1] + frames[1]);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1], R"({"n":1})");
  EXPECT_EQ(seen[2].rfind("!frame 2 (Heartbeat) failed authentication", 0), 0u) << seen[2];
  EXPECT_TRUE(parser.authentication_failed());
  // A frame replayed from another connection fails too: its key differs.
  Session other = Handshake();
  FrameParser fresh = Receiver(other.server.client_to_head);
  EXPECT_EQ(Read(fresh, frames[0])[0][0], '!');
}

TEST(FrameAuthTest, ReorderedFramesAreRefused) {
  Session s = Handshake();
  std::vector<std::string> frames = Sealed(s.client.client_to_head, 2);
  FrameParser parser = Receiver(s.server.client_to_head);
  std::vector<std::string> seen = Read(parser, frames[1] + frames[0]);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0][0], '!');
  EXPECT_TRUE(parser.authentication_failed());
}

TEST(FrameAuthTest, AFrameAfterADroppedOneIsRefused) {
  Session s = Handshake();
  std::vector<std::string> frames = Sealed(s.client.client_to_head, 3);
  FrameParser parser = Receiver(s.server.client_to_head);
  std::vector<std::string> seen = Read(parser, frames[0] + frames[2]);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], R"({"n":0})");
  EXPECT_EQ(seen[1][0], '!');
}

TEST(FrameAuthTest, AFrameSealedWithTheOtherDirectionsKeyIsRefused) {
  Session s = Handshake();
  // The head's own frame reflected back to it, or a node's frame with the head's key.
  std::vector<std::string> reflected = Sealed(s.server.head_to_client, 1);
  FrameParser head = Receiver(s.server.client_to_head);
  EXPECT_EQ(Read(head, reflected[0])[0][0], '!');
  EXPECT_TRUE(head.authentication_failed());
  std::vector<std::string> from_node = Sealed(s.client.client_to_head, 1);
  FrameParser node = Receiver(s.client.head_to_client);
  EXPECT_EQ(Read(node, from_node[0])[0][0], '!');
}

TEST(FrameAuthTest, InjectedFramesWithoutTheKeyAreRefused) {
  Session s = Handshake();
  const std::string exec = EncodeJsonFrame(MessageType::kRshExec, {{"session", 1}});
  for (const std::string& injected :
       {exec + std::string(kFrameTagSize, '\0'), exec + HmacSha256("guessed token", exec),
        exec + exec + exec /* no tags: the next frames are read as its tag */}) {
    FrameParser parser = Receiver(s.client.head_to_client);
    std::vector<std::string> seen = Read(parser, injected);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].rfind("!frame 0 (RshExec) failed authentication", 0), 0u) << seen[0];
  }
  // Once refused, the parser stays refused: a good frame after it is not read.
  FrameParser parser = Receiver(s.server.client_to_head);
  Read(parser, exec + std::string(kFrameTagSize, '\0'));
  EXPECT_EQ(Read(parser, Sealed(s.client.client_to_head, 1)[0]).at(0)[0], '!');
}

TEST(FrameAuthTest, AVersionOnePeerIsRefusedAtItsFirstFrame) {
  std::string old = EncodeFrame(MessageType::kHello, "{}");
  old[4] = 1;
  FrameParser parser;
  std::vector<std::string> seen = Read(parser, old);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_NE(seen[0].find("version 1 is not supported"), std::string::npos) << seen[0];
}

}  // namespace
}  // namespace trainrun
