// The example job (docker/examples/mnist-like): real PyTorch DDP on gloo, two ranks,
// through trainrun, into run history.
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

TEST(ExampleJobTest, MnistLikeDdpTrainsOnTwoRanksAndReachesHistory) {
  if (system("/usr/bin/python3 -c 'import torch.distributed' 2>/dev/null") != 0) {
    GTEST_SKIP() << "needs PyTorch for /usr/bin/python3 (apt install python3-torch)";
  }
  TempDir dir;
  Invocation r =
      RunTrainrun({"run", SourceRoot() + "/docker/examples/mnist-like/job.json", "--run-id",
                   "example", "--history", dir / "history", "--workdir", dir / "work"},
                  dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string run = dir / "history/mnist-like/example";

  std::vector<std::string> checksums;
  for (int rank = 0; rank < 2; ++rank) {
    std::ifstream metrics(run + "/logs/metrics_rank" + std::to_string(rank) + ".jsonl");
    std::vector<double> losses;
    std::string line;
    while (std::getline(metrics, line)) {
      json m = json::parse(line);
      EXPECT_EQ(m["rank"], rank);
      losses.push_back(m["loss"]);
    }
    ASSERT_EQ(losses.size(), 5u) << "rank " << rank;
    EXPECT_LT(losses.back(), losses.front() / 2) << "the loss did not go down on rank " << rank;
    std::string log = ReadFile(run + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
    size_t at = log.find("weight checksum ");
    ASSERT_NE(at, std::string::npos) << log;
    checksums.push_back(log.substr(at, log.find('\n', at) - at));
  }
  EXPECT_EQ(checksums[0], checksums[1]) << "DDP ranks ended with different weights";
  EXPECT_GT(std::filesystem::file_size(run + "/outputs/model.pt"), 100000u);
  EXPECT_NE(ReadFile(run + "/outputs/model.txt").find("ranks: 2"), std::string::npos);
  json record = json::parse(ReadFile(run + "/run.json"));
  EXPECT_EQ(record["status"], "Completed");
  EXPECT_EQ(record["ranks"].size(), 2u);
}

}  // namespace
}  // namespace trainrun::testing
