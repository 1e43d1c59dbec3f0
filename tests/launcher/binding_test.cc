// Binding end to end with the real trainrun: ranks start with the planned CPU
// affinity, memory policy and variables (checked from /proc by each rank), the
// plan is in the run record and system_logs/, `--dry-run` and `trainrun
// topology` show it, and a container's CUDA_VISIBLE_DEVICES is the pool ranks
// draw from.
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

std::string Fixture(const std::string& name) {
  return SourceRoot() + "/tests/fixtures/topologies/" + name;
}

// "KEY value" lines of the binding probe.
std::map<std::string, std::string> ProbeReport(const std::string& log) {
  std::map<std::string, std::string> report;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    std::string key = line.substr(0, space);
    if (key == "ENV") {
      std::string var = line.substr(space + 1);
      report["ENV " + var.substr(0, var.find('='))] = var.substr(var.find('=') + 1);
    } else {
      report[key] = line.substr(space + 1);
    }
  }
  return report;
}

std::string OwnStatus(const std::string& key) {
  std::istringstream in(ReadFile("/proc/self/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string value = line.substr(key.size() + 1);
      return value.substr(value.find_first_not_of(" \t"));
    }
  }
  return "";
}

class BindingTest : public ::testing::Test {
 protected:
  std::string Job(json extra = json::object()) {
    json job = {{"command", json::array({BindingProbe()})},
                {"sourceDirectory", "src"},
                {"experimentName", "binding"},
                {"runId", "run" + std::to_string(++jobs_)}};
    for (auto& [key, value] : extra.items()) job[key] = value;
    WriteFile(dir_ / "src/README", "source\n");
    std::string path = dir_ / ("job" + std::to_string(jobs_) + ".json");
    WriteFile(path, job.dump(2));
    run_id_ = job["runId"];
    return path;
  }
  Invocation Run(const std::string& job, std::vector<std::string> more = {},
                 const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {"run",       job,          "--history", dir_ / "history",
                                     "--workdir", dir_ / "work"};
    args.insert(args.end(), more.begin(), more.end());
    return RunTrainrun(args, dir_.path(), env);
  }
  std::string RunDir() const { return dir_ / ("history/binding/" + run_id_); }
  static std::string BindingProbe() { return BINDING_PROBE_BINARY; }

  TempDir dir_;
  int jobs_ = 0;
  std::string run_id_;
};

// Plans on this machine's real topology and checks each rank's /proc against
// it.
TEST_F(BindingTest, EveryRankStartsWithThePlannedCpusAndMemoryPolicy) {
  for (int ranks : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(ranks) + " rank(s)");
    Invocation r = Run(Job({{"processCountPerNode", ranks}}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json record = json::parse(ReadFile(RunDir() + "/run.json"));
    const json& plan = record["details"]["binding"]["plan"];
    ASSERT_EQ(plan["binding"], "auto");
    ASSERT_EQ(plan["ranks"].size(), static_cast<size_t>(ranks));
    EXPECT_EQ(record["details"]["binding"]["topology"]["thisMachine"], true);
    for (int rank = 0; rank < ranks; ++rank) {
      SCOPED_TRACE("rank " + std::to_string(rank));
      const json& planned = plan["ranks"][rank];
      auto report = ProbeReport(
          ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt"));
      ASSERT_FALSE(planned["cpus"].get<std::string>().empty());
      EXPECT_EQ(report["CPUS"], planned["cpus"].get<std::string>());
      EXPECT_EQ(report["THREAD_CPUS"], planned["cpus"].get<std::string>());
      std::string nodes;
      for (const json& node : planned["memoryNodes"])
        nodes += (nodes.empty() ? "" : ",") + std::to_string(node.get<int>());
      ASSERT_FALSE(nodes.empty());
      EXPECT_EQ(report["MEMPOLICY"], "bind " + nodes);
      EXPECT_EQ(report["NUMA_MAPS"], "bind:" + nodes);
      const std::string omp = planned["environment"]["OMP_NUM_THREADS"];
      EXPECT_EQ(omp, planned["sharedCores"] ? "1" : std::to_string(planned["cores"].get<int>()));
      if (getenv("OMP_NUM_THREADS") == nullptr) {
        EXPECT_EQ(report["ENV OMP_NUM_THREADS"], omp);
      }
      EXPECT_EQ(report["ENV CUDA_DEVICE_ORDER"], "PCI_BUS_ID");
    }
    std::string table = ReadFile(RunDir() + "/system_logs/binding_node_0.txt");
    EXPECT_NE(table.find("binding auto: " + std::to_string(ranks) + " rank(s), job file"),
              std::string::npos)
        << table;
  }
}

TEST_F(BindingTest, BindingNoneLeavesRanksAsTrainrunItselfRuns) {
  Invocation r = Run(Job({{"processCountPerNode", 2}, {"binding", "none"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int rank = 0; rank < 2; ++rank) {
    auto report = ProbeReport(
        ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt"));
    EXPECT_EQ(report["CPUS"], OwnStatus("Cpus_allowed_list"));
    EXPECT_EQ(report["MEMPOLICY"], "default ");
    if (getenv("OMP_NUM_THREADS") == nullptr) {
      EXPECT_EQ(report.count("ENV OMP_NUM_THREADS"), 0u);
    }
  }
  json record = json::parse(ReadFile(RunDir() + "/run.json"));
  EXPECT_EQ(record["details"]["binding"]["plan"]["binding"], "none");
}

// Docker's default seccomp profile refuses set_mempolicy without CAP_SYS_NICE:
// the ranks still start, CPU-bound, with memory unbound and the reason in the
// log.
TEST_F(BindingTest, RefusedMemoryPolicyBindsCpusOnly) {
  std::string job = Job({{"processCountPerNode", 2}});
  TrainrunProcess process({DENY_MEMPOLICY_BINARY, TrainrunBinary(), "run", job, "--history",
                           dir_ / "history", "--workdir", dir_ / "work"},
                          {}, dir_.path());
  Invocation r = process.Wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json plan = json::parse(ReadFile(RunDir() + "/run.json"))["details"]["binding"]["plan"];
  for (int rank = 0; rank < 2; ++rank) {
    auto report = ProbeReport(
        ReadFile(RunDir() + "/user_logs/std_log_process_" + std::to_string(rank) + ".txt"));
    EXPECT_EQ(report["MEMPOLICY"], "error");  // the filter is inherited
    EXPECT_EQ(report["CPUS"], plan["ranks"][rank]["cpus"].get<std::string>());
    EXPECT_TRUE(plan["ranks"][rank]["memoryNodes"].empty());
  }
  EXPECT_NE(ReadFile(RunDir() + "/system_logs/trainrun_node_0.log").find("CAP_SYS_NICE"),
            std::string::npos);
}

TEST_F(BindingTest, TheUsersOmpNumThreadsWins) {
  Invocation r =
      Run(Job({{"processCountPerNode", 1},
               {"environment", {{"environmentVariables", {{"OMP_NUM_THREADS", "7"}}}}}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = ProbeReport(ReadFile(RunDir() + "/user_logs/std_log_process_0.txt"));
  EXPECT_EQ(report["ENV OMP_NUM_THREADS"], "7");
  EXPECT_NE(ReadFile(RunDir() + "/system_logs/trainrun_node_0.log")
                .find("OMP_NUM_THREADS=7 from the job file kept"),
            std::string::npos);
}

TEST_F(BindingTest, AnotherMachinesTopologyIsForPlanningOnly) {
  Invocation r = Run(Job(), {"--topology-xml", Fixture("nvidiaDGX2.xml")});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--topology-xml " + Fixture("nvidiaDGX2.xml")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("describes another machine"), std::string::npos) << r.err;

  Invocation missing = Run(Job(), {"--topology-xml", dir_ / "missing.xml"});
  EXPECT_EQ(missing.exit_code, 64);
  EXPECT_NE(missing.err.find(dir_ / "missing.xml"), std::string::npos) << missing.err;
}

TEST_F(BindingTest, DryRunShowsTheDgx2Plan) {
  Invocation r = Run(Job(), {"--dry-run"}, {"TRAINRUN_TOPOLOGY_XML=" + Fixture("nvidiaDGX2.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ranks:          16 (one per GPU)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("15    15   0000:e7:00.0  1     2*     24-25  1"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("rank 15:"), std::string::npos);
  EXPECT_NE(r.out.find("  binding: CPUs 24-25, memory on NUMA node(s) 1\n"), std::string::npos);
  EXPECT_NE(r.out.find("    CUDA_VISIBLE_DEVICES=15\n"), std::string::npos);
  EXPECT_NE(r.err.find("NUMA node 1 has 2 core(s) for 8 ranks"), std::string::npos) << r.err;
}

TEST_F(BindingTest, TheContainersCudaVisibleDevicesIsThePool) {
  Invocation r = Run(Job(), {"--dry-run", "--topology-xml", Fixture("nvidiaDGX2.xml")},
                     {"CUDA_VISIBLE_DEVICES=12,3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ranks:          2 (one per GPU)"), std::string::npos) << r.out;
  size_t rank1 = r.out.find("rank 1:");
  ASSERT_NE(rank1, std::string::npos);
  EXPECT_NE(r.out.substr(0, rank1).find("    CUDA_VISIBLE_DEVICES=3\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.substr(rank1).find("    CUDA_VISIBLE_DEVICES=12\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(rank1).find("  binding: CPUs 24-25, memory on NUMA node(s) 1"),
            std::string::npos);
}

TEST_F(BindingTest, AJobFilesCudaVisibleDevicesIsKeptAndPlannedWith) {
  Invocation r =
      Run(Job({{"environment", {{"environmentVariables", {{"CUDA_VISIBLE_DEVICES", "9,10"}}}}}}),
          {"--dry-run", "--topology-xml", Fixture("nvidiaDGX2.xml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ranks:          2 (one per GPU)"), std::string::npos) << r.out;
  size_t rank1 = r.out.find("rank 1:");
  ASSERT_NE(rank1, std::string::npos);
  EXPECT_NE(r.out.substr(rank1).find("    CUDA_VISIBLE_DEVICES=9,10\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.substr(rank1).find("  binding: CPUs 25, memory on NUMA node(s) 1"),
            std::string::npos)
      << r.out;
}

TEST_F(BindingTest, TopologyCommandTablesAndJson) {
  Invocation here = RunTrainrun({"topology"}, dir_.path());
  ASSERT_EQ(here.exit_code, 0) << here.err;
  EXPECT_NE(here.out.find("topology: this machine"), std::string::npos) << here.out;
  EXPECT_NE(here.out.find("binding auto: 1 rank(s)"), std::string::npos) << here.out;

  Invocation table =
      RunTrainrun({"topology", "--topology-xml", Fixture("24em64t-2n6c2t-pci.xml")}, dir_.path());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("GPUs: 3 found by PCI vendor and class"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("0     0    0000:06:00.0  0     6      "
                           "0,2,4,6,8,10,12,14,16,18,20,22  0       mlx4_0 (host bridge)  6"),
            std::string::npos)
      << table.out;

  Invocation j = RunTrainrun({"topology", "--nproc", "4", "--json"}, dir_.path(),
                             {"TRAINRUN_TOPOLOGY_XML=" + Fixture("24em64t-2n6c2t-pci.xml")});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json plan = json::parse(j.out);
  ASSERT_EQ(plan["plan"]["ranks"].size(), 4u);
  EXPECT_EQ(plan["plan"]["ranks"][3]["gpus"], json::array({0}));
  EXPECT_EQ(plan["plan"]["ranks"][1]["environment"]["UCX_NET_DEVICES"], "mlx4_0:1");
  EXPECT_EQ(plan["topology"]["nics"][2]["name"], "mlx4_0");

  Invocation missing = RunTrainrun({"topology", "--topology-xml", dir_ / "none.xml"}, dir_.path());
  EXPECT_EQ(missing.exit_code, 64);
  EXPECT_NE(missing.err.find(dir_ / "none.xml"), std::string::npos) << missing.err;
}

TEST_F(BindingTest, TopologyCommandWithTheFakeNvmlShowsBothNumberings) {
  // NVML lists the DGX-2's first two GPUs in reverse PCI order.
  WriteFile(dir_ / "devices",
            "00000000:36:00.0 GPU-second Fake B\n00000000:34:00.0 GPU-first "
            "Fake A\n");
  Invocation r =
      RunTrainrun({"topology", "--topology-xml", Fixture("nvidiaDGX2.xml"), "--json"}, dir_.path(),
                  {std::string("TRAINRUN_NVML_LIBRARY=") + FAKE_NVML_LIBRARY,
                   "FAKE_NVML_DEVICES=" + (dir_ / "devices")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["gpus"]["source"], std::string("NVML (") + FAKE_NVML_LIBRARY + ")");
  ASSERT_EQ(j["gpus"]["devices"].size(), 2u);
  EXPECT_EQ(j["gpus"]["devices"][0]["busId"], "0000:34:00.0");
  EXPECT_EQ(j["gpus"]["devices"][0]["nvmlIndex"], 1);
  EXPECT_EQ(j["gpus"]["devices"][0]["uuid"], "GPU-first");
  EXPECT_EQ(j["plan"]["ranks"][0]["gpuBusIds"][0], "0000:34:00.0");
  EXPECT_EQ(j["plan"]["ranks"][0]["environment"]["CUDA_VISIBLE_DEVICES"], "0");
}

}  // namespace
}  // namespace trainrun::testing
