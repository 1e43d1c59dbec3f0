// RunToCompletion (runtime/process/process_posix.h): a helper command run to its end
// with its output handed over line by line, and stopped when a cancel comes.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/process/process_posix.h"
#include "runtime/process/rank_env.h"

namespace trainrun {
namespace {

Result<ExitStatus> RunScript(const std::string& script, std::vector<std::string>* lines,
                             const CancelToken* cancel = nullptr) {
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = CurrentEnvironment();
  return RunToCompletion(
      spec, [&](std::string_view line) { lines->emplace_back(line); }, cancel);
}

TEST(RunToCompletionTest, HandsOverStdoutAndStderrLineByLineAndTheExit) {
  std::vector<std::string> lines;
  Result<ExitStatus> status =
      RunScript("echo one; echo two >&2; printf 'no newline'; exit 3", &lines);
  ASSERT_TRUE(status.ok()) << status.status().message();
  EXPECT_EQ(status->code, 3);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "no newline"}));
}

TEST(RunToCompletionTest, AProgramThatDoesNotExistIsAnErrorNamingIt) {
  SpawnSpec spec;
  spec.argv = {"/nonexistent/pip"};
  spec.env = CurrentEnvironment();
  Result<ExitStatus> status = RunToCompletion(
      spec, [](std::string_view) {}, nullptr);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.status().message().find("/nonexistent/pip"), std::string::npos)
      << status.status().message();
}

TEST(RunToCompletionTest, CancelStopsTheCommandsWholeGroup) {
  CancelToken cancel;
  std::vector<std::string> lines;
  std::thread canceler([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Cancel("SIGTERM");
  });
  // The sleep is a grandchild in the same group: it goes too, or the pipe stays open.
  Result<ExitStatus> status = RunScript("echo started; sleep 600; echo never", &lines, &cancel);
  canceler.join();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().code(), StatusCode::kCanceled);
  EXPECT_EQ(lines, std::vector<std::string>{"started"});
}

}  // namespace
}  // namespace trainrun
