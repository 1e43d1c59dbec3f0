// FieldErrors (one line an error, in order) and MatchFields (known names matched
// case-insensitively, unknown ones with a did-you-mean, repeated ones refused).
#include "base/field_errors.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

using nlohmann::json;

TEST(FieldErrorsTest, StartsEmptyAndKeepsErrorsInTheOrderAdded) {
  FieldErrors errors;
  EXPECT_TRUE(errors.empty());
  errors.Add("/b", "second field");
  errors.Add("", "the document");
  ASSERT_FALSE(errors.empty());
  ASSERT_EQ(errors.list().size(), 2u);
  EXPECT_EQ(errors.list()[0].pointer, "/b");
  EXPECT_EQ(errors.list()[1].message, "the document");
  Status s = errors.ToStatus();
  EXPECT_EQ(s.code(), StatusCode::kInvalidJob);
  EXPECT_EQ(s.message(), "/b: second field\n/: the document");
}

TEST(FieldErrorsTest, ToStatusWritesEachLineAsTheCallerSays) {
  FieldErrors errors;
  errors.Add("/x", "bad");
  errors.Add("/y", "worse");
  Status s = errors.ToStatus(
      [](const FieldError& e) { return "job.json" + e.pointer + " -> " + e.message; });
  EXPECT_EQ(s.message(), "job.json/x -> bad\njob.json/y -> worse");
}

TEST(MatchFieldsTest, MatchesKnownNamesCaseInsensitivelyWithThePointerAsSpelled) {
  json object = {{"Alpha", 1}, {"beta", nullptr}};
  FieldErrors errors;
  auto members = MatchFields(object, "/s", {"alpha", "beta", "gamma"}, &errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(*members.at("alpha").value, 1);
  EXPECT_EQ(members.at("alpha").pointer, "/s/Alpha");
  EXPECT_TRUE(members.at("beta").value->is_null());
  EXPECT_EQ(members.count("gamma"), 0u);
}

TEST(MatchFieldsTest, AnUnknownNameIsAnErrorWithTheNearestKnownOneOrTheList) {
  json object = {{"alpah", 1}, {"zzz", 2}, {"a/b", 3}};
  FieldErrors errors;
  auto members = MatchFields(object, "/s", {"alpha", "beta"}, &errors, "check");
  EXPECT_TRUE(members.empty());
  ASSERT_EQ(errors.list().size(), 3u);
  // nlohmann's objects are sorted by name: a/b, alpah, zzz.
  EXPECT_EQ(errors.list()[0].pointer, "/s/a~1b");
  EXPECT_EQ(errors.list()[1].pointer, "/s/alpah");
  EXPECT_EQ(errors.list()[1].message, "unknown check; did you mean \"alpha\"?");
  EXPECT_EQ(errors.list()[2].message, "unknown check; known checks here are alpha, beta");
}

TEST(MatchFieldsTest, ANameGivenTwiceIsAnErrorAndTheLaterValueIsKept) {
  json object = {{"alpha", 1}, {"ALPHA", 2}};  // sorted by name: ALPHA, then alpha
  FieldErrors errors;
  auto members = MatchFields(object, "", {"alpha"}, &errors);
  ASSERT_EQ(errors.list().size(), 1u);
  EXPECT_EQ(errors.list()[0].pointer, "/alpha");
  EXPECT_EQ(errors.list()[0].message, "\"alpha\" is given twice");
  EXPECT_EQ(*members.at("alpha").value, 1);
}

TEST(MatchFieldsTest, UnderscoresCountOnlyWhenAsked) {
  json object = {{"entry_script", "a.py"}};
  FieldErrors strict;
  EXPECT_TRUE(MatchFields(object, "", {"entryScript"}, &strict).empty());
  EXPECT_FALSE(strict.empty());
  FieldErrors loose;
  auto members = MatchFields(object, "", {"entryScript"}, &loose, "field",
                             /*ignore_underscores=*/true);
  EXPECT_TRUE(loose.empty());
  EXPECT_EQ(members.at("entryScript").pointer, "/entry_script");
}

}  // namespace
}  // namespace trainrun
