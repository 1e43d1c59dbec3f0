// `trainrun history` against runs made by the real `trainrun run`.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

class HistoryCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "src/a.txt", "a");
    for (int i = 0; i < 2; ++i) {
      json job = {{"command",
                   {"/bin/sh", "-c",
                    "mkdir -p outputs/sub && echo model-$RANK > outputs/model.txt && "
                    "echo deep > outputs/sub/x.txt && echo line-from-$RANK && exit " +
                        std::to_string(i * 3)}},
                  {"sourceDirectory", "src"},
                  {"experimentName", i == 0 ? "exp-a" : "exp-b"},
                  {"runId", "r" + std::to_string(i)}};
      WriteFile(dir_ / "job.json", job.dump());
      Invocation r = RunTrainrun({"run", dir_ / "job.json", "--history", history(), "--workdir",
                                  dir_ / "work", "--console", "none"},
                                 dir_.path());
      ASSERT_EQ(r.exit_code, i * 3) << r.err;
    }
  }
  Invocation History(std::vector<std::string> args) {
    args.insert(args.begin(), {"history", "--history", history()});
    return RunTrainrun(args, dir_.path());
  }
  std::string history() const { return dir_ / "hist"; }
  TempDir dir_;
};

TEST_F(HistoryCommandTest, ListShowFilesDownloadLogs) {
  Invocation list = History({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_LT(list.out.find("r1"), list.out.find("r0"));  // newest first
  EXPECT_NE(list.out.find("Failed"), std::string::npos);
  EXPECT_NE(list.out.find("Completed"), std::string::npos);

  json runs = json::parse(History({"list", "--json"}).out);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["runId"], "r1");
  EXPECT_EQ(runs[0]["exitCode"], 3);
  EXPECT_EQ(json::parse(History({"--experiment", "exp-a", "list", "--json"}).out).size(), 1u);

  Invocation show = History({"show", "r1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("Failed (exit code 3)"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("rank 0 exited with exit code 3"), std::string::npos) << show.out;
  EXPECT_EQ(json::parse(History({"show", "r0", "--json"}).out)["status"], "Completed");

  Invocation files = History({"files", "r0"});
  EXPECT_NE(files.out.find("outputs/model.txt"), std::string::npos) << files.out;
  EXPECT_NE(files.out.find("user_logs/std_log_process_0.txt"), std::string::npos);

  Invocation one = History({"download", "r0", "outputs/model.txt", "-o", dir_ / "model.txt"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(ReadFile(dir_ / "model.txt"), "model-0\n");
  Invocation folder = History({"download", "r0", "outputs", "-o", dir_ / "out"});
  ASSERT_EQ(folder.exit_code, 0) << folder.err;
  EXPECT_EQ(ReadFile(dir_ / "out/sub/x.txt"), "deep\n");

  Invocation logs = History({"logs", "r0", "--rank", "0"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_EQ(logs.out, "line-from-0\n");
  EXPECT_NE(History({"logs", "r0", "--system"}).out.find("phase   Running"), std::string::npos);
  EXPECT_EQ(History({"logs", "r0", "--follow"}).out, "line-from-0\n");  // ended: prints and returns
}

TEST_F(HistoryCommandTest, MissingRunsAndFilesExit66) {
  Invocation r = History({"show", "nope"});
  EXPECT_EQ(r.exit_code, 66);
  EXPECT_NE(r.err.find("no run \"nope\""), std::string::npos) << r.err;
  r = History({"download", "r0", "outputs/absent.bin"});
  EXPECT_EQ(r.exit_code, 66);
  EXPECT_NE(r.err.find("absent.bin"), std::string::npos) << r.err;
}

// Arguments past their limits are usage errors (64), found before any store is read.
class HistoryLimitsTest : public ::testing::Test {
 protected:
  Invocation History(std::vector<std::string> args) {
    args.insert(args.begin(), {"history", "--history", dir_ / "hist"});
    return RunTrainrun(args, dir_.path());
  }
  TempDir dir_;
};

TEST_F(HistoryLimitsTest, LongPathsAndBadRunIdsExit64NamingTheArgument) {
  Invocation r = History({"download", "r0", "outputs", "-o", std::string(300, 'o')});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("-o/--output: path component \"ooo"), std::string::npos) << r.err;
  std::string long_path;
  while (long_path.size() <= 4096) long_path += "dir/";
  r = History({"download", "r0", "outputs", "-o", long_path});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("-o/--output: is 4100 bytes long"), std::string::npos) << r.err;
  r = History({"download", "r0", "outputs/" + std::string(300, 'f')});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("path: path component \"fff"), std::string::npos) << r.err;

  for (const char* command : {"show", "files", "download", "logs"}) {
    r = History({command, std::string(300, 'r')});
    EXPECT_EQ(r.exit_code, 64) << command << ": " << r.err;
    EXPECT_NE(r.err.find("run id \"rrr"), std::string::npos) << r.err;
    EXPECT_LT(r.err.size(), 400u) << "the message quotes only the start: " << r.err;
  }
  r = History({"show", "../etc"});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("run id \"../etc\": must be 1-255 letters"), std::string::npos) << r.err;
  r = History({"--experiment", "a/b", "list"});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--experiment \"a/b\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "hist"));
}

}  // namespace
}  // namespace trainrun::testing
