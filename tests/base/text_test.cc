// Text helpers: escaping what other programs chose before it is printed.
#include "base/text.h"

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

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

TEST(ShellQuoteTest, PlainWordsStayAndOthersAreQuotedTheWayAShellReadsThem) {
  EXPECT_EQ(ShellQuote("python3"), "python3");
  EXPECT_EQ(ShellQuote("--lr=0.5,a/b.py@x%y+z:-_"), "--lr=0.5,a/b.py@x%y+z:-_");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("two words"), "'two words'");
  EXPECT_EQ(ShellQuote("it's $HOME"), R"('it'\''s $HOME')");
  EXPECT_EQ(ShellQuote("caf\xc3\xa9"), "'caf\xc3\xa9'");
  EXPECT_EQ(ShellQuote("a\nb's\\"), R"($'a\nb\'s\\')");
  EXPECT_EQ(ShellJoin({"python", "-c", "print('hi there')", ""}),
            R"(python -c 'print('\''hi there'\'')' '')");
}

// What bash makes of the line is the words given, one by one.
TEST(ShellQuoteTest, BashReadsTheLineBackAsTheSameWords) {
  if (access("/bin/bash", X_OK) != 0) GTEST_SKIP() << "needs /bin/bash";
  const std::vector<std::string> argv = {
      "plain",       "two words",      "",          "it's",
      "\"double\"",  "$HOME `x` \\ !", "tab\there", "line\nbreak",
      "esc\x1b[31m", "caf\xc3\xa9",    "*"};
  // Each word followed by a NUL, as printf writes them.
  const std::string command = "/bin/bash -c " + ShellQuote("printf '%s\\0' " + ShellJoin(argv));
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[256];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
  ASSERT_EQ(pclose(pipe), 0);
  std::string expected;
  for (const std::string& word : argv) expected += word + std::string(1, '\0');
  EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace trainrun
