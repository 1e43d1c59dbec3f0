// The control protocol's parser on good, truncated, oversized and garbage
// input: it must tell "need more bytes" from "malformed" and never crash or
// allocate for a frame it refuses.
#include "runtime/cluster/control_protocol.h"

#include <random>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

using State = FrameParser::State;

TEST(ControlProtocolTest, EncodesTheDocumentedHeader) {
  std::string frame = EncodeFrame(MessageType::kJoin, "abc");
  ASSERT_EQ(frame.size(), kFrameHeaderSize + 3);
  EXPECT_EQ(frame.substr(0, 4), "TRNC");
  EXPECT_EQ(frame[4], 2);  // version 2: frames carry a tag after the handshake
  EXPECT_EQ(frame[5], 10);
  EXPECT_EQ(frame.substr(6, 2), std::string(2, '\0'));
  EXPECT_EQ(frame.substr(8, 4), std::string("\0\0\0\3", 4));  // big-endian length
  EXPECT_EQ(frame.substr(12), "abc");
}

TEST(ControlProtocolTest, ParsesFramesFedOneByteAtATime) {
  std::string stream = EncodeJsonFrame(MessageType::kHello, {{"a", 1}}) +
                       EncodeFrame(MessageType::kHeartbeat, "") +
                       EncodeRshData({7, 2, std::string("x\0y", 3)});
  FrameParser parser(kMaxControlPayload);
  std::vector<Frame> frames;
  for (char c : stream) {
    parser.Feed(std::string_view(&c, 1));
    Frame frame;
    State state;
    while ((state = parser.Next(&frame)) == State::kFrame) frames.push_back(frame);
    ASSERT_EQ(state, State::kNeedMore) << parser.error();
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, MessageType::kHello);
  EXPECT_EQ(DecodeJsonPayload(frames[0])->value("a", 0), 1);
  EXPECT_EQ(frames[1].type, MessageType::kHeartbeat);
  EXPECT_TRUE(frames[1].payload.empty());
  Result<RshChunk> chunk = DecodeRshData(frames[2]);
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(chunk->session, 7u);
  EXPECT_EQ(chunk->stream, 2);
  EXPECT_EQ(chunk->data, std::string("x\0y", 3));
  EXPECT_EQ(parser.buffered(), 0u);
}

TEST(ControlProtocolTest, TruncatedFramesNeedMoreBytes) {
  std::string frame = EncodeJsonFrame(MessageType::kAssign, {{"runId", "r"}});
  for (size_t cut = 0; cut < frame.size(); ++cut) {
    FrameParser parser(kMaxControlPayload);
    parser.Feed(frame.substr(0, cut));
    Frame out;
    EXPECT_EQ(parser.Next(&out), State::kNeedMore) << "cut at " << cut;
  }
}

TEST(ControlProtocolTest, OversizedFramesAreRefusedFromTheHeaderAlone) {
  // The header announces 4 GB; only the header ever arrives.
  std::string header =
      EncodeFrame(MessageType::kJoin, "").substr(0, 8) + std::string("\xff\xff\xff\xff", 4);
  FrameParser parser;  // the unauthenticated limit
  parser.Feed(header);
  Frame out;
  EXPECT_EQ(parser.Next(&out), State::kMalformed);
  EXPECT_NE(parser.error().find("larger than the limit of 4096 bytes"), std::string::npos)
      << parser.error();
  EXPECT_EQ(parser.buffered(), 0u);
  // Just over the limit is refused too; at the limit is fine.
  FrameParser exact;
  exact.Feed(EncodeFrame(MessageType::kJoin, std::string(kMaxUnauthenticatedPayload, 'x')));
  EXPECT_EQ(exact.Next(&out), State::kFrame);
  FrameParser over;
  over.Feed(EncodeFrame(MessageType::kJoin, std::string(kMaxUnauthenticatedPayload + 1, 'x')));
  EXPECT_EQ(over.Next(&out), State::kMalformed);
}

TEST(ControlProtocolTest, GarbageIsMalformedAtTheFirstWrongByte) {
  struct Case {
    std::string bytes;
    std::string error;
  };
  std::string good = EncodeFrame(MessageType::kJoin, "{}");
  std::string bad_version = good, bad_type = good, bad_reserved = good;
  bad_version[4] = 9;
  bad_type[5] = 99;
  bad_reserved[7] = 1;
  for (const Case& c :
       {Case{"GET / HTTP/1.1\r\n", "bad magic"}, Case{"T", ""}, Case{"TRX", "bad magic"},
        Case{bad_version, "version 9 is not supported"}, Case{bad_type, "unknown message type 99"},
        Case{bad_reserved, "reserved"}}) {
    FrameParser parser;
    parser.Feed(c.bytes);
    Frame out;
    State state = parser.Next(&out);
    if (c.error.empty()) {
      EXPECT_EQ(state, State::kNeedMore) << c.bytes;  // "T" could still become "TRNC"
      continue;
    }
    EXPECT_EQ(state, State::kMalformed) << c.bytes;
    EXPECT_NE(parser.error().find(c.error), std::string::npos) << parser.error();
    // Malformed stays malformed.
    parser.Feed(good);
    EXPECT_EQ(parser.Next(&out), State::kMalformed);
  }
}

TEST(ControlProtocolTest, RandomBytesNeverCrashTheParser) {
  std::mt19937 random(42);
  for (int round = 0; round < 2000; ++round) {
    FrameParser parser(1024);
    std::string bytes;
    // Mostly valid frames with a few flipped bytes, and pure noise.
    if (round % 2 == 0) {
      bytes =
          EncodeFrame(static_cast<MessageType>(1 + random() % 44), std::string(random() % 64, 'p'));
      bytes[random() % bytes.size()] = static_cast<char>(random());
    } else {
      bytes.resize(random() % 128);
      for (char& c : bytes) c = static_cast<char>(random());
    }
    size_t offset = 0;
    while (offset < bytes.size()) {
      size_t n = 1 + random() % 16;
      parser.Feed(std::string_view(bytes).substr(offset, n));
      offset += n;
      Frame out;
      while (parser.Next(&out) == State::kFrame) {
        EXPECT_LE(out.payload.size(), 1024u);
        DecodeJsonPayload(out).status().IgnoreError();
        if (out.type == MessageType::kRshData) DecodeRshData(out).status().IgnoreError();
      }
    }
  }
}

TEST(ControlProtocolTest, PayloadsThatAreNotObjectsAreErrorsNamingTheMessage) {
  Frame frame{MessageType::kJoin, "[1,2]"};
  Result<nlohmann::json> body = DecodeJsonPayload(frame);
  ASSERT_FALSE(body.ok());
  EXPECT_NE(body.status().message().find("Join message"), std::string::npos);
  frame.payload = "{\"a\":";
  EXPECT_FALSE(DecodeJsonPayload(frame).ok());
  Frame short_data{MessageType::kRshData, "abc"};
  EXPECT_FALSE(DecodeRshData(short_data).ok());
  Frame bad_stream{MessageType::kRshData, std::string("\0\0\0\1\7", 5)};
  EXPECT_FALSE(DecodeRshData(bad_stream).ok());
}

}  // namespace
}  // namespace trainrun
