// Preflight end to end (README "Preflight"): trainrun runs the GPU health checks
// through the fake NVML (TRAINRUN_NVML_LIBRARY) and the NCCL check (the real
// trainrun-nccl-check, which finds no GPU on this machine, or a stand-in script
// through TRAINRUN_NCCL_CHECK) before the user's script; a failure names the node,
// the GPU and the check, exits 75, and the script never runs.
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kExitPreflightFailed = 75;

class PreflightTest : public ::testing::Test {
 protected:
  // A job whose script only leaves a mark, so a test can tell whether it ran.
  std::string Job(json preflight, json extra = json::object()) {
    json job = {{"command", {"/bin/sh", "-c", "touch " + Marker()}},
                {"sourceDirectory", "src"},
                {"experimentName", "tests"},
                {"runId", "pf" + std::to_string(++jobs_)}};
    if (!preflight.is_null()) job["preflight"] = preflight;
    for (auto& [key, value] : extra.items()) job[key] = value;
    WriteFile(dir_ / "src/README", "source\n");
    std::string path = dir_ / ("job" + std::to_string(jobs_) + ".json");
    WriteFile(path, job.dump(2));
    run_id_ = job["runId"];
    return path;
  }
  Invocation Run(const std::string& job, std::vector<std::string> env,
                 const std::string& command = "run") {
    return RunTrainrun({command, job, "--history", history(), "--workdir", dir_ / "work"},
                       dir_.path(), env);
  }
  // The fake NVML with `gpus` GPUs, and `health` as $FAKE_NVML_HEALTH.
  std::vector<std::string> FakeNvml(int gpus, const std::string& health = "") {
    std::string devices;
    for (int i = 0; i < gpus; ++i) {
      devices +=
          "00000000:" + std::to_string(34 + i) + ":00.0 GPU-" + std::to_string(i) + " Fake H100\n";
    }
    WriteFile(dir_ / "devices", devices);
    WriteFile(dir_ / "health", health);
    return {std::string("TRAINRUN_NVML_LIBRARY=") + FAKE_NVML_LIBRARY,
            "FAKE_NVML_DEVICES=" + (dir_ / "devices"), "FAKE_NVML_HEALTH=" + (dir_ / "health")};
  }
  // A stand-in for trainrun-nccl-check: writes its environment to env_<RANK>, and
  // as rank 0 a summary with `busbw` GB/s to --json, then exits `code`.
  std::string StandIn(double busbw, int code = 0) {
    std::string path = dir_ / "nccl-check";
    WriteFile(path,
              "#!/bin/sh\n"
              "json=\n"
              "while [ $# -gt 0 ]; do [ \"$1\" = --json ] && json=\"$2\"; shift; done\n"
              "env > " +
                  (dir_ / "env_") +
                  "$RANK\n"
                  "echo \"stand-in rank $RANK of $WORLD_SIZE\"\n"
                  "if [ -n \"$json\" ]; then echo '{\"record\":\"summary\",\"ranks\":2,\"ops\":"
                  "{\"all_reduce\":{\"sizes\":26,\"avg_busbw_gbps\":1.5,\"peak_algbw_gbps\":2,"
                  "\"peak_busbw_gbps\":" +
                  std::to_string(busbw) +
                  ",\"peak_bytes\":268435456,\"wrong\":0}},\"wrong\":0,\"ok\":true}' > "
                  "\"$json\"; fi\n"
                  "exit " +
                  std::to_string(code) + "\n");
    chmod(path.c_str(), 0755);
    return "TRAINRUN_NCCL_CHECK=" + path;
  }
  bool ScriptRan() const { return fs::exists(Marker()); }
  std::string Marker() const { return dir_ / "script-ran"; }
  std::string history() const { return dir_ / "history"; }
  json Record() const {
    return json::parse(ReadFile(history() + "/tests/" + run_id_ + "/run.json"));
  }

  TempDir dir_;
  int jobs_ = 0;
  std::string run_id_;
};

#ifdef NCCL_CHECK_BINARY
TEST_F(PreflightTest, TheNcclCheckWithNoGpuSaysSoAndFailsThePreflight) {
  Invocation r =
      Run(Job({{"health", false}}), {std::string("TRAINRUN_NCCL_CHECK=") + NCCL_CHECK_BINARY});
  EXPECT_EQ(r.exit_code, kExitPreflightFailed) << r.err;
  EXPECT_FALSE(ScriptRan());
  EXPECT_NE(r.err.find("preflight failed on node 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no GPU to run on"), std::string::npos) << r.err;
  json rec = Record();
  EXPECT_EQ(rec["status"], "Failed");
  EXPECT_EQ(rec["exitCode"], kExitPreflightFailed);
  EXPECT_EQ(rec["outcome"], "preflight failed");
  json node = rec["details"]["preflight"]["nodes"][0];
  EXPECT_EQ(node["nccl"]["ranks"][0]["exitCode"], 3);
  EXPECT_EQ(node["failures"][0]["check"], "nccl");
  EXPECT_NE(ReadFile(history() + "/tests/" + run_id_ + "/system_logs/preflight_nccl_rank_0.txt")
                .find("no GPU"),
            std::string::npos);
}

TEST_F(PreflightTest, TheNcclCheckWithNoGpuIsSkippedWhenTheJobFileSaysSo) {
  Invocation r = Run(Job({{"health", false}, {"onNoGpu", "skip"}}),
                     {std::string("TRAINRUN_NCCL_CHECK=") + NCCL_CHECK_BINARY});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ScriptRan());
  EXPECT_NE(r.err.find("preflight skipped on node 0"), std::string::npos) << r.err;
  EXPECT_EQ(Record()["details"]["preflight"]["result"], "skipped");
}
#endif

TEST_F(PreflightTest, NoNvmlFailsOrIsSkippedAsTheJobFileSays) {
  std::vector<std::string> env = {"TRAINRUN_NVML_LIBRARY=" + (dir_ / "no-such-libnvidia-ml.so")};
  Invocation failed = Run(Job({{"nccl", false}}), env);
  EXPECT_EQ(failed.exit_code, kExitPreflightFailed) << failed.err;
  EXPECT_FALSE(ScriptRan());
  EXPECT_NE(failed.err.find("nvml"), std::string::npos) << failed.err;

  Invocation skipped = Run(Job({{"nccl", false}, {"onNoGpu", "skip"}}), env);
  EXPECT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_TRUE(ScriptRan());
  EXPECT_EQ(Record()["details"]["preflight"]["nodes"][0]["result"], "skipped");
}

// Each health failure the fake NVML can show stops the job before the script,
// naming the node, the GPU by PCI bus id and the check.
TEST_F(PreflightTest, EachHealthFailureNamesTheNodeTheGpuAndTheCheck) {
  struct Case {
    std::string health;  // a $FAKE_NVML_HEALTH line for the second GPU
    std::string check;
    json thresholds = json::object();
  };
  const std::vector<Case> cases = {
      {"ecc_volatile=2", "ecc"},
      {"ecc_aggregate=5", "ecc", {{"maxAggregateUncorrectableEccErrors", 0}}},
      {"retired_pending=1", "retiredPages"},
      {"remap_pending=1", "remappedRows"},
      {"pcie_width=4 pcie_max_width=16", "pcieWidth"},
      {"pcie_gen=3 pcie_max_gen=5 pstate=0",
       "pcieGeneration",
       {{"checks", {{"pcieGeneration", true}}}}},
      {"nvlinks=12 nvlink_down=3", "nvlink"},
      {"clocks=0x8", "throttle"},
      {"clocks=0x40", "throttle"},
      {"clocks=0x80", "throttle"},
      {"xid=79", "xid"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.health);
    std::filesystem::remove(Marker());
    json preflight = {{"nccl", false}};
    if (!c.thresholds.empty()) preflight["health"] = c.thresholds;
    Invocation r = Run(Job(preflight), FakeNvml(2, "0000:35:00.0 " + c.health + "\n"));
    EXPECT_EQ(r.exit_code, kExitPreflightFailed) << r.err;
    EXPECT_FALSE(ScriptRan());
    EXPECT_NE(r.err.find("preflight failed on node 0"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("0000:35:00.0"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.check), std::string::npos) << r.err;
    json rec = Record();
    EXPECT_EQ(rec["exitCode"], kExitPreflightFailed);
    ASSERT_FALSE(rec["details"]["preflight"]["nodes"][0]["failures"].empty());
    json failure = rec["details"]["preflight"]["nodes"][0]["failures"][0];
    EXPECT_EQ(failure["check"], c.check);
    EXPECT_EQ(failure["gpu"], "0000:35:00.0");
    EXPECT_EQ(rec["failure"]["nodeRank"], 0);
  }
}

TEST_F(PreflightTest, FewerGpusThanExpectedFailsTheGpuCount) {
  Invocation r = Run(Job({{"nccl", false}, {"health", {{"expectedGpuCount", 4}}}}), FakeNvml(2));
  EXPECT_EQ(r.exit_code, kExitPreflightFailed) << r.err;
  EXPECT_FALSE(ScriptRan());
  EXPECT_NE(r.err.find("gpuCount"), std::string::npos) << r.err;
}

TEST_F(PreflightTest, HealthyGpusAndTheBandwidthFloorLetTheScriptRun) {
  std::vector<std::string> env = FakeNvml(2);
  env.push_back(StandIn(45.5));
  Invocation r = Run(Job({{"nccl", {{"minBusBandwidthGBps", 40}}}},
                         {{"binding", "none"},
                          {"processCountPerNode", 2},
                          {"environment", {{"environmentVariables", {{"NCCL_DEBUG", "WARN"}}}}}}),
                     env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ScriptRan());
  EXPECT_NE(r.err.find("all_reduce peak busbw 45.50 GB/s"), std::string::npos) << r.err;
  json pf = Record()["details"]["preflight"];
  EXPECT_EQ(pf["result"], "passed");
  EXPECT_EQ(pf["nodes"][0]["nccl"]["summary"]["ops"]["all_reduce"]["peak_busbw_gbps"], 45.5);
  EXPECT_EQ(pf["nodes"][0]["health"]["gpus"].size(), 2u);
  // The check's ranks had the ranks' environment: the plan's variables and the job's.
  for (int rank = 0; rank < 2; ++rank) {
    std::string env_dump = ReadFile(dir_ / ("env_" + std::to_string(rank)));
    EXPECT_NE(env_dump.find("WORLD_SIZE=2"), std::string::npos) << env_dump;
    EXPECT_NE(env_dump.find("LOCAL_RANK=" + std::to_string(rank)), std::string::npos);
    EXPECT_NE(env_dump.find("MASTER_PORT="), std::string::npos);
    EXPECT_NE(env_dump.find("NCCL_DEBUG=WARN"), std::string::npos);
  }
}

TEST_F(PreflightTest, BusBandwidthBelowTheFloorStopsTheJob) {
  std::vector<std::string> env = FakeNvml(2);
  env.push_back(StandIn(12.25));
  Invocation r = Run(Job({{"nccl", {{"minBusBandwidthGBps", 40}}}},
                         {{"binding", "none"}, {"processCountPerNode", 2}}),
                     env);
  EXPECT_EQ(r.exit_code, kExitPreflightFailed) << r.err;
  EXPECT_FALSE(ScriptRan());
  EXPECT_NE(r.err.find("12.25 GB/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("minBusBandwidthGBps 40"), std::string::npos) << r.err;
}

TEST_F(PreflightTest, AFailedNcclRankNamesItsExitCode) {
  std::vector<std::string> env = FakeNvml(1);
  env.push_back(StandIn(100, 4));
  Invocation r = Run(Job(true), env);
  EXPECT_EQ(r.exit_code, kExitPreflightFailed) << r.err;
  EXPECT_FALSE(ScriptRan());
  EXPECT_NE(r.err.find("nccl: rank 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit 4"), std::string::npos) << r.err;
}

TEST_F(PreflightTest, CheckRunsOnlyThePreflight) {
  std::vector<std::string> env = FakeNvml(1);
  env.push_back(StandIn(100));
  // No preflight in the job file: `check` runs the defaults.
  Invocation ok = Run(Job(nullptr), env, "check");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_FALSE(ScriptRan());
  json rec = Record();
  EXPECT_EQ(rec["status"], "Completed");
  EXPECT_EQ(rec["outcome"], "preflight passed");
  EXPECT_EQ(rec["details"]["preflight"]["result"], "passed");

  Invocation bad = Run(Job(nullptr), FakeNvml(1, "* ecc_volatile=1\n"), "check");
  EXPECT_EQ(bad.exit_code, kExitPreflightFailed) << bad.err;
  EXPECT_FALSE(ScriptRan());
  EXPECT_NE(bad.err.find("ecc"), std::string::npos) << bad.err;
}

TEST_F(PreflightTest, OffByDefaultAndUnknownFieldsAreNamed) {
  // No preflight: nothing is checked, even with no NVML at all.
  Invocation r = Run(Job(nullptr), {"TRAINRUN_NVML_LIBRARY=" + (dir_ / "none.so")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ScriptRan());
  EXPECT_FALSE(Record()["details"].contains("preflight"));

  Invocation typo = Run(Job({{"ncl", false}}), {});
  EXPECT_EQ(typo.exit_code, 65);
  EXPECT_NE(typo.err.find("/preflight/ncl: unknown field; did you mean \"nccl\"?"),
            std::string::npos)
      << typo.err;
  Invocation threshold = Run(Job({{"health", {{"maxUncorrectableEcc", 1}}}}), {});
  EXPECT_EQ(threshold.exit_code, 65);
  EXPECT_NE(threshold.err.find("/preflight/health/maxUncorrectableEcc"), std::string::npos)
      << threshold.err;
}

}  // namespace
}  // namespace trainrun::testing
