// libFuzzer target: the control plane's frame parser (control_protocol.h) on a byte
// stream cut into arbitrary pieces, and the payload decoders every receiver starts
// with. The parser never reads past what it was fed, never returns a frame of an
// unknown type or over its limit, and a frame it returns encodes back to the bytes
// it came from.
//
// Input: byte 0 picks the limit (bit 0: the unauthenticated one), the size of the
// pieces fed (bits 1-6, 1 to 64 bytes) and whether frames carry a tag under a fixed
// session key (bit 7, as after the handshake); the rest is the stream. A frame
// returned from a tagged stream re-encodes, sealed under the same key at the same
// sequence number, to exactly its bytes.
//
// Built by -DTRAINRUN_BUILD_FUZZERS=ON (scripts/fuzz.sh); corpus in
// corpus/control_frame.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/cluster/control_auth.h"
#include "runtime/cluster/control_protocol.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trainrun;
  using fuzz::Check;
  if (size < 1) return 0;
  const size_t limit = (data[0] & 1) ? kMaxUnauthenticatedPayload : kMaxControlPayload;
  const size_t piece = 1 + ((data[0] >> 1) & 0x3f);
  const bool tagged = (data[0] & 0x80) != 0;
  const std::string key(32, 'k');
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameParser parser(limit);
  FrameAuthenticator sealer(key);
  if (tagged) parser.Authenticate(std::make_unique<FrameAuthenticator>(key));
  std::string consumed;  // the frames returned, encoded again
  bool malformed = false;
  for (size_t at = 0; at < stream.size() && !malformed; at += piece) {
    parser.Feed(stream.substr(at, piece));
    Frame frame;
    while (true) {
      FrameParser::State state = parser.Next(&frame);
      if (state == FrameParser::State::kNeedMore) break;
      if (state == FrameParser::State::kMalformed) {
        Check(!parser.error().empty());
        malformed = true;
        break;
      }
      Check(IsKnownMessageType(static_cast<uint8_t>(frame.type)));
      Check(frame.payload.size() <= limit);
      std::string encoded = EncodeFrame(frame.type, frame.payload);
      if (tagged) sealer.Seal(&encoded);
      consumed += encoded;
      // What every receiver does first with a payload: never throws.
      (void)DecodeJsonPayload(frame);
      (void)DecodeRshData(frame);
    }
  }
  // The frames returned are the stream's first bytes, exactly.
  Check(stream.substr(0, consumed.size()) == consumed);
  if (!malformed) Check(consumed.size() + parser.buffered() == stream.size());
  return 0;
}
