// Metrics end to end: ranks log through trainrun's Python module and the azureml
// stand-in, a rank dies, and `trainrun history metrics` / `show` / `--plot` read
// what reached history.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

// Two ranks. Each logs through azureml's Run and trainrun's module; rank 0 then
// waits to be stopped, and rank 1 kills itself (SIGKILL) once rank 0 has logged
// everything: what both logged must survive the failing rank.
constexpr const char* kScript = R"(
import os, signal, sys, time
import azureml
from azureml.core import Run
import trainrun

assert azureml.TRAINRUN_COMPAT, "the stand-in should be used: no real azureml here"
rank = int(os.environ["RANK"])
run = Run.get_context()
assert run.id == os.environ["AZUREML_RUN_ID"], run.id
for step in range(4):
    run.log("loss", 1.0 / (step + 1) + rank, step=step)
run.log_list("lr", [0.1, 0.01, 0.001])
run.log_row("table", epoch=1, acc=0.5 + rank)
run.parent.log("parent_metric", 7)
run.tag("who", "metrics-test")
trainrun.log("accuracy", float("nan"))
trainrun.log("accuracy", 0.75 + rank / 10)
trainrun.set_tag("done-%d" % rank, "yes")
mine = os.path.join(os.environ["TRAINRUN_METRICS_DIR"], "rank_0.jsonl")
if rank == 0:
    time.sleep(300)
while not (os.path.exists(mine) and "done-0" in open(mine).read()):
    time.sleep(0.01)
os.kill(os.getpid(), signal.SIGKILL)
)";

class MetricsTest : public ::testing::Test {
 protected:
  Invocation History(std::vector<std::string> args) {
    args.insert(args.begin(), {"history", "--history", dir_ / "hist"});
    return RunTrainrun(args, dir_.path());
  }
  TempDir dir_;
};

TEST_F(MetricsTest, RanksLogThroughTheModuleAndAzuremlAndSurviveAFailingRank) {
  WriteFile(dir_ / "src/train.py", kScript);
  json job = {{"script", "train.py"},
              {"sourceDirectory", "src"},
              {"experimentName", "metrics"},
              {"runId", "m1"},
              {"processCountPerNode", 2},
              {"environment", {{"python", {{"interpreterPath", "/usr/bin/python3"}}}}}};
  WriteFile(dir_ / "job.json", job.dump());
  Invocation r = RunTrainrun({"run", dir_ / "job.json", "--history", dir_ / "hist", "--workdir",
                              dir_ / "work", "--console", "none"},
                             dir_.path());
  ASSERT_EQ(r.exit_code, 137) << r.out << r.err;

  Invocation metrics = History({"metrics", "m1", "--json"});
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  json m = json::parse(metrics.out);
  const json& loss = m["metrics"]["loss"];
  EXPECT_EQ(loss["overall"]["steps"], 4);
  EXPECT_EQ(loss["overall"]["min"], 0.25);
  EXPECT_EQ(loss["overall"]["max"], 2.0);
  EXPECT_EQ(loss["ranks"]["0"]["latest"], 0.25);
  EXPECT_EQ(loss["ranks"]["1"]["latest"], 1.25);  // the rank that died
  EXPECT_EQ(loss["ranks"]["1"]["latestStep"], 3);
  EXPECT_EQ(m["metrics"]["lr"]["ranks"]["0"]["latest"], 0.001);
  EXPECT_EQ(m["metrics"]["lr"]["ranks"]["0"]["steps"], 3);
  EXPECT_EQ(m["metrics"]["table/acc"]["ranks"]["1"]["latest"], 1.5);
  EXPECT_EQ(m["metrics"]["parent_metric"]["overall"]["latest"], 7);
  // Unnumbered: the NaN at step 0, 0.75 at step 1; the NaN is not in the range.
  EXPECT_EQ(m["metrics"]["accuracy"]["ranks"]["0"]["latest"], 0.75);
  EXPECT_EQ(m["metrics"]["accuracy"]["ranks"]["0"]["min"], 0.75);
  EXPECT_EQ(m["tags"]["who"], "metrics-test");
  EXPECT_FALSE(m.contains("problems")) << m.dump(2);

  Invocation table = History({"metrics", "m1"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("METRIC"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("tag who: metrics-test"), std::string::npos) << table.out;

  Invocation show = History({"show", "m1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("metric:      loss 0.25 at step 3 (min 0.25, max 2)"), std::string::npos)
      << show.out;

  Invocation plot = History({"metrics", "m1", "--plot", dir_ / "m.svg"});
  ASSERT_EQ(plot.exit_code, 0) << plot.err;
  Invocation parsed = SvgSeries(dir_ / "m.svg", dir_.path());
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  json series = json::parse(parsed.out);
  EXPECT_EQ(series["loss"], json({{"0", 4}, {"1", 4}}));
  EXPECT_EQ(series["accuracy"], json({{"0", 1}, {"1", 1}}));  // the NaN is no point

  Invocation png = History({"metrics", "m1", "--plot", dir_ / "m.png"});
  EXPECT_EQ(png.exit_code, 64);
  EXPECT_NE(png.err.find("SVG only"), std::string::npos) << png.err;
  Invocation missing = History({"metrics", "nope"});
  EXPECT_EQ(missing.exit_code, 66) << missing.err;
}

TEST_F(MetricsTest, TheStandInStepsAsideForARealAzureml) {
  // A "real" azureml after trainrun's folder on sys.path, as site-packages is.
  WriteFile(dir_ / "site/azureml/__init__.py", "REAL = True\n");
  WriteFile(dir_ / "site/azureml/core/__init__.py", "class Run:\n    REAL = True\n");
  WriteFile(dir_ / "src/train.py",
            "import sys\nsys.path.append(" + json(dir_ / "site").dump() +
                ")\n"
                "import azureml\nfrom azureml.core import Run\n"
                "assert not azureml.TRAINRUN_COMPAT and azureml.REAL and Run.REAL\n"
                "print('real azureml used')\n");
  json job = {{"script", "train.py"},
              {"sourceDirectory", "src"},
              {"experimentName", "metrics"},
              {"runId", "m2"},
              {"processCountPerNode", 1},
              {"environment", {{"python", {{"interpreterPath", "/usr/bin/python3"}}}}}};
  WriteFile(dir_ / "job.json", job.dump());
  Invocation r = RunTrainrun(
      {"run", dir_ / "job.json", "--history", dir_ / "hist", "--workdir", dir_ / "work"},
      dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("real azureml used"), std::string::npos) << r.out;
  Invocation metrics = History({"metrics", "m2"});
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  EXPECT_NE(metrics.out.find("has no metrics"), std::string::npos) << metrics.out;
}

}  // namespace
}  // namespace trainrun::testing
