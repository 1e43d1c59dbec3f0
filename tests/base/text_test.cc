// Text helpers: escaping what other programs chose before it is printed.
#include "base/text.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(EscapeControlTest, ControlCharactersBecomeEscapesAndNothingElseChanges) {
  EXPECT_EQ(EscapeControl("gpu-001.cluster"), "gpu-001.cluster");
  EXPECT_EQ(EscapeControl("evil\n\x1b[31mFORGED"), "evil\\n\\x1b[31mFORGED");
  EXPECT_EQ(EscapeControl("a\rb\tc\x07\x7f"), "a\\rb\\tc\\x07\\x7f");
  EXPECT_EQ(EscapeControl(std::string("nul\0here", 8)), "nul\\x00here");
  // UTF-8 text is kept; C1 controls, line separators and bidirectional overrides
  // are not.
  EXPECT_EQ(EscapeControl("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(EscapeControl("\xc2\x9b"
                          "31m"),
            "\\u009b31m");
  EXPECT_EQ(EscapeControl("a\xe2\x80\xa8"
                          "b\xe2\x80\xae"),
            "a\\u2028b\\u202e");
  // Bytes that are not UTF-8 (a lone CSI byte, a cut sequence, an overlong form).
  EXPECT_EQ(EscapeControl("\x9b"
                          "2J"),
            "\\x9b2J");
  EXPECT_EQ(EscapeControl("\xe2\x9c"), "\\xe2\\x9c");
  EXPECT_EQ(EscapeControl("\xc0\x8a"), "\\xc0\\x8a");
}

TEST(EscapeControlTest, EscapingTwiceChangesNothing) {
  for (const std::string text : {"a\n\x1b[0m", "\xff\xfe", "back\\slash", "\xc2\x85"}) {
    const std::string once = EscapeControl(text);
    EXPECT_EQ(EscapeControl(once), once) << once;
    for (char c : once) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << once;  // every input here escapes to ASCII
    }
  }
}

}  // namespace
}  // namespace trainrun
