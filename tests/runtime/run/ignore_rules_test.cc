#include "runtime/run/ignore_rules.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(GlobMatchTest, GitSemantics) {
  EXPECT_TRUE(GlobMatch("*.pyc", "a.pyc"));
  EXPECT_FALSE(GlobMatch("*.pyc", "dir/a.pyc"));  // '*' stops at '/'
  EXPECT_TRUE(GlobMatch("a?c", "abc"));
  EXPECT_FALSE(GlobMatch("a?c", "a/c"));
  EXPECT_TRUE(GlobMatch("**/cache", "cache"));
  EXPECT_TRUE(GlobMatch("**/cache", "x/y/cache"));
  EXPECT_TRUE(GlobMatch("data/**", "data/a/b.bin"));
  EXPECT_TRUE(GlobMatch("a/**/b", "a/b"));
  EXPECT_TRUE(GlobMatch("a/**/b", "a/x/y/b"));
  EXPECT_FALSE(GlobMatch("a/**/b", "a/x/y/c"));
  EXPECT_TRUE(GlobMatch("[a-c]x", "bx"));
  EXPECT_FALSE(GlobMatch("[!a-c]x", "bx"));
  EXPECT_TRUE(GlobMatch("\\*x", "*x"));
  EXPECT_FALSE(GlobMatch("\\*x", "ax"));
}

// Found by tests/fuzz/ignore_rules_fuzzer's neighbourhood: each '*' used to retry
// every split, 2^n ways; the watchdog fails this test if that comes back.
TEST(GlobMatchTest, ManyStarsDoNotBacktrackExponentially) {
  const std::string stars = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
  EXPECT_FALSE(GlobMatch(stars, std::string(200, 'a')));
  EXPECT_TRUE(GlobMatch(stars, std::string(200, 'a') + "b"));
  EXPECT_FALSE(GlobMatch("**/a/**/a/**/a/**/a/**/a/**/b", "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/c"));
  EXPECT_TRUE(GlobMatch("**/a/**/a/**/a/**/a/**/a/**/b", "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/b"));
}

TEST(IgnoreRulesTest, PatternsNegationAnchoringAndDirectories) {
  IgnoreRules rules;
  rules.AddFile("", "# comment\n*.ckpt\n!keep.ckpt\n/build\nlogs/\ndata/raw\n\\#notes\n  \n");
  EXPECT_TRUE(rules.IsIgnored("model.ckpt", false));
  EXPECT_TRUE(rules.IsIgnored("sub/model.ckpt", false));  // no '/': any depth
  EXPECT_FALSE(rules.IsIgnored("keep.ckpt", false));      // negated later
  EXPECT_TRUE(rules.IsIgnored("build", true));
  EXPECT_FALSE(rules.IsIgnored("src/build", true));  // anchored at the root
  EXPECT_TRUE(rules.IsIgnored("logs", true));
  EXPECT_FALSE(rules.IsIgnored("logs", false));  // trailing '/': folders only
  EXPECT_TRUE(rules.IsIgnored("data/raw", true));
  EXPECT_FALSE(rules.IsIgnored("x/data/raw", true));  // inner '/' anchors too
  EXPECT_TRUE(rules.IsIgnored("#notes", false));
  EXPECT_FALSE(rules.IsIgnored("train.py", false));
}

TEST(IgnoreRulesTest, NestedFilesApplyBelowTheirFolderAndWinOverParents) {
  IgnoreRules rules;
  rules.AddFile("", "*.bin\n");
  rules.AddFile("pkg", "!weights.bin\n/local.txt\n");
  EXPECT_TRUE(rules.IsIgnored("a.bin", false));
  EXPECT_TRUE(rules.IsIgnored("pkg/a.bin", false));
  EXPECT_FALSE(rules.IsIgnored("pkg/weights.bin", false));
  EXPECT_TRUE(rules.IsIgnored("weights.bin", false));
  EXPECT_TRUE(rules.IsIgnored("pkg/local.txt", false));
  EXPECT_FALSE(rules.IsIgnored("local.txt", false));
  EXPECT_FALSE(rules.IsIgnored("pkg/sub/local.txt", false));
}

}  // namespace
}  // namespace trainrun
