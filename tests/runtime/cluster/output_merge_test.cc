#include "runtime/cluster/output_merge.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(OutputMergeTest, ConflictNamesKeepTheExtension) {
  EXPECT_EQ(ConflictKey("outputs/dir/model.pt", 1), "outputs/dir/model.node1.pt");
  EXPECT_EQ(ConflictKey("outputs/README", 2), "outputs/README.node2");
  EXPECT_EQ(ConflictKey("outputs/.env", 3), "outputs/.env.node3");
  EXPECT_EQ(ConflictKey("outputs/v1.2/notes", 1), "outputs/v1.2/notes.node1");
}

TEST(OutputMergeTest, UniqueFilesGoUpFromTheirNode) {
  MergePlan plan = PlanMerge({{0, {{"outputs/a", 1, ""}}}, {1, {{"outputs/b", 2, ""}}}});
  EXPECT_EQ(plan.uploads[0], (std::map<std::string, std::string>{{"outputs/a", "outputs/a"}}));
  EXPECT_EQ(plan.uploads[1], (std::map<std::string, std::string>{{"outputs/b", "outputs/b"}}));
  EXPECT_TRUE(plan.conflicts.empty());
}

TEST(OutputMergeTest, DigestsAreAskedOnlyForSharedKeysOfEqualSize) {
  std::vector<NodeManifest> manifests = {
      {0, {{"outputs/same", 10, ""}, {"outputs/sizes", 1, ""}, {"outputs/only0", 5, ""}}},
      {1, {{"outputs/same", 10, ""}, {"outputs/sizes", 2, ""}}},
  };
  std::map<int, std::set<std::string>> needed = DigestsNeeded(manifests);
  EXPECT_EQ(needed[0], std::set<std::string>{"outputs/same"});
  EXPECT_EQ(needed[1], std::set<std::string>{"outputs/same"});
}

TEST(OutputMergeTest, IdenticalFilesGoUpOnceFromTheLowestNode) {
  MergePlan plan = PlanMerge({{0, {{"logs/config.yaml", 10, "d1"}}},
                              {1, {{"logs/config.yaml", 10, "d1"}}},
                              {2, {{"logs/config.yaml", 10, "d1"}}}});
  EXPECT_EQ(plan.uploads[0].at("logs/config.yaml"), "logs/config.yaml");
  EXPECT_EQ(plan.uploads[1].count("logs/config.yaml"), 0u);
  EXPECT_EQ(plan.uploads[2].count("logs/config.yaml"), 0u);
  EXPECT_TRUE(plan.conflicts.empty());
}

TEST(OutputMergeTest, DifferentVersionsAreAllKeptAndReported) {
  MergePlan plan = PlanMerge({{0, {{"outputs/model.pt", 10, "a"}}},
                              {1, {{"outputs/model.pt", 12, ""}}},
                              {2, {{"outputs/model.pt", 10, "a"}}},
                              {3, {{"outputs/model.pt", 10, "b"}}}});
  EXPECT_EQ(plan.uploads[0].at("outputs/model.pt"), "outputs/model.pt");
  EXPECT_EQ(plan.uploads[1].at("outputs/model.pt"), "outputs/model.node1.pt");
  EXPECT_EQ(plan.uploads[2].count("outputs/model.pt"), 0u);  // same as node 0
  EXPECT_EQ(plan.uploads[3].at("outputs/model.pt"), "outputs/model.node3.pt");
  ASSERT_EQ(plan.conflicts.size(), 1u);
  const OutputConflict& c = plan.conflicts[0];
  EXPECT_EQ(c.key, "outputs/model.pt");
  EXPECT_EQ(c.kept_as, (std::map<int, std::string>{{0, "outputs/model.pt"},
                                                   {1, "outputs/model.node1.pt"},
                                                   {2, "outputs/model.pt"},
                                                   {3, "outputs/model.node3.pt"}}));
  nlohmann::json j = ConflictsToJson(plan.conflicts);
  EXPECT_EQ(j[0]["path"], "outputs/model.pt");
  EXPECT_EQ(j[0]["versions"].size(), 4u);
}

TEST(OutputMergeTest, AConflictNameThatIsTakenGetsASuffix) {
  MergePlan plan = PlanMerge({{0, {{"outputs/a.txt", 1, "x"}, {"outputs/a.node1.txt", 1, "y"}}},
                              {1, {{"outputs/a.txt", 1, "z"}}}});
  EXPECT_EQ(plan.uploads[1].at("outputs/a.txt"), "outputs/a.node1.txt~2");
  EXPECT_EQ(plan.uploads[0].at("outputs/a.node1.txt"), "outputs/a.node1.txt");
}

}  // namespace
}  // namespace trainrun
