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

  // Each rank logged its loss and accuracy per epoch (python/trainrun).
  Invocation metrics = RunTrainrun(
      {"history", "--history", dir / "history", "metrics", "example", "--json"}, dir.path());
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  const json m = json::parse(metrics.out);
  std::vector<std::string> checksums;
  for (int rank = 0; rank < 2; ++rank) {
    const json& loss = m["metrics"]["loss"]["ranks"][std::to_string(rank)];
    const json& accuracy = m["metrics"]["accuracy"]["ranks"][std::to_string(rank)];
    ASSERT_EQ(loss["steps"], 5) << m.dump(2);
    ASSERT_EQ(accuracy["steps"], 5) << m.dump(2);
    EXPECT_EQ(loss["latestStep"], 4);
    EXPECT_LT(loss["latest"].get<double>(), loss["max"].get<double>() / 2)
        << "the loss did not go down on rank " << rank;
    EXPECT_GT(accuracy["latest"].get<double>(), 0.5) << "rank " << rank;
    EXPECT_LE(accuracy["max"].get<double>(), 1.0);
    std::string log = ReadFile(run + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt");
    size_t at = log.find("weight checksum ");
    ASSERT_NE(at, std::string::npos) << log;
    checksums.push_back(log.substr(at, log.find('\n', at) - at));
  }
  // The plot: a line per rank of 5 points per metric, as XML.
  Invocation plot = RunTrainrun(
      {"history", "--history", dir / "history", "metrics", "example", "--plot", dir / "m.svg"},
      dir.path());
  ASSERT_EQ(plot.exit_code, 0) << plot.err;
  Invocation parsed = SvgSeries(dir / "m.svg", dir.path());
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  EXPECT_EQ(json::parse(parsed.out), json::parse(R"({"accuracy": {"0": 5, "1": 5},
                                                     "loss": {"0": 5, "1": 5}})"));
  Invocation show =
      RunTrainrun({"history", "--history", dir / "history", "show", "example"}, dir.path());
  EXPECT_NE(show.out.find("metric:      loss "), std::string::npos) << show.out;
  EXPECT_EQ(checksums[0], checksums[1]) << "DDP ranks ended with different weights";
  EXPECT_GT(std::filesystem::file_size(run + "/outputs/model.pt"), 100000u);
  EXPECT_NE(ReadFile(run + "/outputs/model.txt").find("ranks: 2"), std::string::npos);
  json record = json::parse(ReadFile(run + "/run.json"));
  EXPECT_EQ(record["status"], "Completed");
  EXPECT_EQ(record["ranks"].size(), 2u);
}

}  // namespace
}  // namespace trainrun::testing
