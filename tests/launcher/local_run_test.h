// A fixture for the one-node `trainrun run` tests (run_test.cc, restart_test.cc):
// job files in a temporary folder, runs of the real binary on them, and what the
// runs left in history.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {

// A fixture for one-node runs of the real binary in a temporary folder: the job
// files it writes (a source folder "src", experiment "tests", run ids
// <prefix>1, <prefix>2, ...), `trainrun run` on them with a file:// history and
// workdir there, and what the runs left in history.
class LocalRunTest : public ::testing::Test {
 protected:
  explicit LocalRunTest(std::string run_id_prefix) : prefix_(std::move(run_id_prefix)) {}

  // Writes `job` with the fields above set (those given in it win) and returns its
  // path; the run id becomes run_id_.
  std::string WriteJob(nlohmann::json job) {
    nlohmann::json full = {{"sourceDirectory", "src"},
                           {"experimentName", "tests"},
                           {"runId", prefix_ + std::to_string(++jobs_)}};
    for (auto& [key, value] : job.items()) full[key] = value;
    WriteFile(dir_ / "src/README", "source snapshot\n");
    std::string path = dir_ / ("job" + std::to_string(jobs_) + ".json");
    WriteFile(path, full.dump(2));
    run_id_ = full["runId"];
    return path;
  }
  std::vector<std::string> Args(const std::string& job, std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"run", job, "--history", history(), "--workdir", workdir()};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }
  Invocation Run(const std::string& job, std::vector<std::string> more = {}) {
    return RunTrainrun(Args(job, more), dir_.path());
  }
  std::string history() const { return dir_ / "history"; }
  std::string workdir() const { return dir_ / "work"; }
  std::string RunDir() const { return history() + "/tests/" + run_id_; }
  std::string LocalDir() const { return workdir() + "/tests/" + run_id_; }
  nlohmann::json Record() const { return nlohmann::json::parse(ReadFile(RunDir() + "/run.json")); }
  // Rank `rank`'s log in history.
  std::string Log(int rank) const {
    return ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
  }

  TempDir dir_;
  int jobs_ = 0;
  std::string run_id_;

 private:
  std::string prefix_;
};

}  // namespace trainrun::testing
