// GPU health through the real dlopen path, against the fake libnvidia-ml
// (tests/gpu/fake_nvml.c): four healthy GPUs, then one health failure at a time on one
// of them, which the report must name by PCI bus id and check while the others pass.
#include "gpu/gpu_health.h"

#include <stdlib.h>

#include <chrono>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun::gpu::testing {
namespace {

using ::nlohmann::json;
using ::trainrun::testing::TempDir;
using ::trainrun::testing::WriteFile;

// NVML's spelling in the devices file; the report's normalised one.
constexpr const char* kNvmlBusIds[4] = {"00000000:1B:00.0", "00000000:34:00.0", "00000000:B9:00.0",
                                        "00000000:DB:00.0"};
constexpr const char* kBusIds[4] = {"0000:1b:00.0", "0000:34:00.0", "0000:b9:00.0", "0000:db:00.0"};

class GpuHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string lines;
    for (int i = 0; i < 4; ++i) {
      lines += std::string(kNvmlBusIds[i]) + " GPU-fake-" + std::to_string(i) + " Fake H100\n";
    }
    WriteFile(dir_ / "devices", lines);
    WriteFile(dir_ / "health", "");
    setenv("FAKE_NVML_DEVICES", (dir_ / "devices").c_str(), 1);
    setenv("FAKE_NVML_HEALTH", (dir_ / "health").c_str(), 1);
    unsetenv("FAKE_NVML_INIT_ERROR");
    unsetenv("FAKE_NVML_NOT_SUPPORTED");
    thresholds_.xid_wait_ms = 20;  // keep the tests quick
  }
  void TearDown() override {
    for (const char* name : {"FAKE_NVML_DEVICES", "FAKE_NVML_HEALTH", "FAKE_NVML_INIT_ERROR",
                             "FAKE_NVML_NOT_SUPPORTED"}) {
      unsetenv(name);
    }
  }

  // GPU 1 (0000:34:00.0) gets `settings` (the fake's key=value list).
  void Break(const std::string& settings) {
    WriteFile(dir_ / "health", std::string(kNvmlBusIds[1]) + " " + settings + "\n");
  }

  HealthReport Check(const std::string& library = FAKE_NVML_LIBRARY) {
    HealthOptions options;
    options.nvml_library = library;
    return CheckGpuHealth(thresholds_, options);
  }

  TempDir dir_;
  HealthThresholds thresholds_;
};

const CheckResult* Find(const HealthReport& report, std::string_view check,
                        const std::string& bus_id) {
  for (const CheckResult& r : report.results) {
    if (r.check == check && r.bus_id == bus_id) return &r;
  }
  return nullptr;
}

// The report has exactly one failure: `check` on GPU 1, whose message names the GPU by
// bus id and the check and says `words`; the same check passed on the other GPUs.
void ExpectOnlyGpu1Fails(const HealthReport& report, std::string_view check,
                         const std::string& words) {
  std::vector<const CheckResult*> failures = report.Failures();
  ASSERT_EQ(failures.size(), 1u) << HealthSummary(report);
  const CheckResult& f = *failures[0];
  EXPECT_EQ(f.check, check);
  EXPECT_EQ(f.bus_id, kBusIds[1]);
  EXPECT_EQ(f.gpu_index, 1);
  EXPECT_NE(f.message.find(std::string("GPU ") + kBusIds[1]), std::string::npos) << f.message;
  EXPECT_NE(f.message.find(std::string(": ") + std::string(check) + ": "), std::string::npos)
      << f.message;
  EXPECT_NE(f.message.find(words), std::string::npos) << f.message;
  EXPECT_FALSE(report.ok());
  for (int i : {0, 2, 3}) {
    const CheckResult* other = Find(report, check, kBusIds[i]);
    ASSERT_NE(other, nullptr) << kBusIds[i];
    EXPECT_EQ(other->state, CheckState::kPassed) << other->message;
  }
  // The console summary carries the failure's line.
  EXPECT_NE(HealthSummary(report).find("failed: " + f.message), std::string::npos);
}

TEST_F(GpuHealthTest, HealthyGpusPassEveryCheckOnByDefault) {
  HealthReport report = Check();
  ASSERT_TRUE(report.nvml_available) << report.nvml_problem;
  ASSERT_EQ(report.gpus.size(), 4u);
  EXPECT_EQ(report.gpus[2].bus_id, kBusIds[2]);
  EXPECT_EQ(report.gpus[2].uuid, "GPU-fake-2");
  // nvml and gpuCount, then 7 checks per GPU (pcieGeneration is off by default).
  ASSERT_EQ(report.results.size(), 2u + 4 * 7);
  EXPECT_EQ(report.results[0].check, kCheckNvml);
  EXPECT_EQ(report.results[1].check, kCheckGpuCount);
  for (const CheckResult& r : report.results) {
    EXPECT_EQ(r.state, CheckState::kPassed) << r.message;
    EXPECT_NE(r.check, kCheckPcieGeneration);
  }
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(HealthSummary(report),
            "GPU health: 4 GPUs, 30 checks passed, 0 failed, 0 not supported\n");
  const CheckResult* width = Find(report, kCheckPcieWidth, kBusIds[0]);
  ASSERT_NE(width, nullptr);
  EXPECT_EQ(width->figures, json({{"current", 16}, {"max", 16}}));
}

TEST_F(GpuHealthTest, VolatileUncorrectableEccErrorsFail) {
  Break("ecc_volatile=2 ecc_aggregate=2");
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckEcc, "2 uncorrectable ECC errors since the driver loaded");
  const CheckResult* ecc = Find(report, kCheckEcc, kBusIds[1]);
  EXPECT_EQ(ecc->figures["volatile"], 2);
  EXPECT_EQ(ecc->figures["maxVolatile"], 0);
  // A threshold above the count passes.
  thresholds_.max_uncorrectable_ecc_errors = 2;
  EXPECT_TRUE(Check().ok());
}

TEST_F(GpuHealthTest, AggregateUncorrectableEccErrorsFailOnlyWithALimit) {
  Break("ecc_aggregate=3");
  HealthReport report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);  // reported, not limited by default
  EXPECT_EQ(Find(report, kCheckEcc, kBusIds[1])->figures["aggregate"], 3);
  thresholds_.max_aggregate_uncorrectable_ecc_errors = 0;
  ExpectOnlyGpu1Fails(Check(), kCheckEcc, "3 uncorrectable ECC errors over the GPU's life");
}

TEST_F(GpuHealthTest, DisabledEccIsNotSupportedUnlessRequired) {
  Break("ecc=0");
  HealthReport report = Check();
  EXPECT_TRUE(report.ok());
  const CheckResult* ecc = Find(report, kCheckEcc, kBusIds[1]);
  EXPECT_EQ(ecc->state, CheckState::kNotSupported);
  EXPECT_EQ(ecc->figures["enabled"], false);
  thresholds_.require_ecc = true;
  ExpectOnlyGpu1Fails(Check(), kCheckEcc, "ECC is disabled but requireEcc is true");
}

TEST_F(GpuHealthTest, PendingPageRetirementFails) {
  Break("retired_pending=1");
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckRetiredPages, "the GPU needs a reset");
  EXPECT_EQ(Find(report, kCheckRetiredPages, kBusIds[1])->figures["pending"], true);
}

TEST_F(GpuHealthTest, PendingRowRemappingFails) {
  Break("remap_uncorrected=1 remap_pending=1");
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckRemappedRows, "a row remapping is pending");
  EXPECT_EQ(Find(report, kCheckRemappedRows, kBusIds[1])->figures,
            json({{"corrected", 0}, {"uncorrected", 1}, {"pending", true}, {"failed", false}}));
}

TEST_F(GpuHealthTest, FailedRowRemappingFails) {
  Break("remap_uncorrected=9 remap_failure=1");
  ExpectOnlyGpu1Fails(Check(), kCheckRemappedRows, "a row remapping failed");
}

TEST_F(GpuHealthTest, ANarrowPcieLinkFails) {
  Break("pcie_width=4");
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckPcieWidth, "PCIe link at x4, the GPU's maximum is x16");
  EXPECT_EQ(Find(report, kCheckPcieWidth, kBusIds[1])->figures,
            json({{"current", 4}, {"max", 16}}));
}

TEST_F(GpuHealthTest, ALowPcieGenerationFailsOnlyWhenOnAndBusy) {
  Break("pcie_gen=1 pstate=0");
  EXPECT_TRUE(Check().ok());  // off by default
  thresholds_.pcie_generation = true;
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckPcieGeneration,
                      "PCIe link at generation 1 while busy (P0), the GPU's maximum is 4");
  EXPECT_EQ(Find(report, kCheckPcieGeneration, kBusIds[1])->figures,
            json({{"current", 1}, {"max", 4}, {"performanceState", 0}}));
  // Idle, the link downshifts: not judged.
  Break("pcie_gen=1 pstate=8");
  report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);
  const CheckResult* generation = Find(report, kCheckPcieGeneration, kBusIds[1]);
  EXPECT_EQ(generation->state, CheckState::kNotSupported);
  EXPECT_NE(generation->message.find("the GPU is idle (P8)"), std::string::npos);
}

TEST_F(GpuHealthTest, AnInactiveNvLinkFails) {
  Break("nvlinks=18 nvlink_down=3,17");
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckNvLink, "NVLink 3, 17 inactive (16 of 18 active)");
  EXPECT_EQ(Find(report, kCheckNvLink, kBusIds[1])->figures,
            json({{"links", 18}, {"active", 16}, {"inactive", {3, 17}}}));
}

TEST_F(GpuHealthTest, NoActiveNvLinkIsNotSupportedUnlessAMinimumIsSet) {
  Break("nvlinks=4 nvlink_down=0,1,2,3");
  HealthReport report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);
  EXPECT_EQ(Find(report, kCheckNvLink, kBusIds[1])->state, CheckState::kNotSupported);
  thresholds_.min_active_nvlinks = 4;
  ExpectOnlyGpu1Fails(Check(), kCheckNvLink,
                      "0 of 4 NVLinks active, fewer than minActiveNvLinks 4");
}

TEST_F(GpuHealthTest, AGpuWithoutNvLinkIsNotSupported) {
  WriteFile(dir_ / "health", "* nvlinks=0\n");
  HealthReport report = Check();
  EXPECT_TRUE(report.ok());
  const CheckResult* nvlink = Find(report, kCheckNvLink, kBusIds[3]);
  EXPECT_EQ(nvlink->state, CheckState::kNotSupported);
  EXPECT_NE(nvlink->message.find("the GPU has no NVLink"), std::string::npos);
  EXPECT_NE(HealthSummary(report).find("  not supported on 4 GPUs, e.g. GPU 0000:1b:00.0 (index "
                                       "0): nvlink: the GPU has no NVLink\n"),
            std::string::npos)
      << HealthSummary(report);
}

TEST_F(GpuHealthTest, HardwareSlowdownFails) {
  Break("clocks=0x8");
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckThrottle, "clocks held down by hwSlowdown");
  EXPECT_EQ(Find(report, kCheckThrottle, kBusIds[1])->figures,
            json({{"reasons", {"hwSlowdown"}}, {"failing", {"hwSlowdown"}}}));
}

TEST_F(GpuHealthTest, ThermalSlowdownFails) {
  Break("clocks=0x60");
  ExpectOnlyGpu1Fails(Check(), kCheckThrottle,
                      "clocks held down by swThermalSlowdown, hwThermalSlowdown");
}

TEST_F(GpuHealthTest, PowerBrakeFails) {
  Break("clocks=0x81");  // power brake on an idle GPU
  HealthReport report = Check();
  ExpectOnlyGpu1Fails(report, kCheckThrottle, "clocks held down by hwPowerBrakeSlowdown");
  EXPECT_EQ(Find(report, kCheckThrottle, kBusIds[1])->figures["reasons"],
            json({"gpuIdle", "hwPowerBrakeSlowdown"}));
}

TEST_F(GpuHealthTest, IdleAndPowerCapAreOnlyReported) {
  Break("clocks=0x5");
  HealthReport report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);
  EXPECT_EQ(Find(report, kCheckThrottle, kBusIds[1])->message,
            "GPU 0000:34:00.0 (index 1): throttle: only gpuIdle, swPowerCap active");
  // Unless the job file lists them.
  thresholds_.throttle_fail_mask = kReasonSwPowerCap;
  ExpectOnlyGpu1Fails(Check(), kCheckThrottle, "clocks held down by swPowerCap");
}

TEST_F(GpuHealthTest, AnXidFailsWithinTheWait) {
  Break("xid=79");
  const auto start = std::chrono::steady_clock::now();
  HealthReport report = Check();
  const auto waited = std::chrono::steady_clock::now() - start;
  ExpectOnlyGpu1Fails(report, kCheckXid, "XID 79 reported within 20 ms");
  EXPECT_EQ(Find(report, kCheckXid, kBusIds[1])->figures,
            json({{"xids", {79}}, {"waitedMilliseconds", 20}}));
  // One wait for all four GPUs, not one each.
  EXPECT_LT(waited, std::chrono::milliseconds(1000));
}

TEST_F(GpuHealthTest, IgnoredXidsDoNotFail) {
  Break("xid=13,43");
  thresholds_.ignored_xids = {13, 43};
  HealthReport report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);
  EXPECT_EQ(Find(report, kCheckXid, kBusIds[1])->message,
            "GPU 0000:34:00.0 (index 1): xid: only ignored XID 13, 43 within 20 ms");
  thresholds_.ignored_xids = {13};
  ExpectOnlyGpu1Fails(Check(), kCheckXid, "XID 43 reported");
}

TEST_F(GpuHealthTest, FewerGpusThanExpectedFails) {
  thresholds_.expected_gpu_count = 8;
  HealthReport report = Check();
  std::vector<const CheckResult*> failures = report.Failures();
  ASSERT_EQ(failures.size(), 1u) << HealthSummary(report);
  EXPECT_EQ(failures[0]->check, kCheckGpuCount);
  EXPECT_EQ(failures[0]->message, "gpuCount: NVML sees 4 GPUs, the job expects 8");
  EXPECT_EQ(failures[0]->figures, json({{"found", 4}, {"expected", 8}}));
  thresholds_.expected_gpu_count = 4;
  EXPECT_TRUE(Check().ok());
}

TEST_F(GpuHealthTest, NoGpuAtAllFailsWithoutAnExpectation) {
  WriteFile(dir_ / "devices", "");
  HealthReport report = Check();
  ASSERT_EQ(report.Failures().size(), 1u) << HealthSummary(report);
  EXPECT_EQ(report.Failures()[0]->message, "gpuCount: NVML sees no GPU");
}

TEST_F(GpuHealthTest, TheJobsGpusMissingFromNvmlFailTheCount) {
  HealthOptions options;
  options.nvml_library = FAKE_NVML_LIBRARY;
  options.bus_ids = {"0000:34:00.0", "0000:99:00.0"};
  HealthReport report = CheckGpuHealth(thresholds_, options);
  ASSERT_EQ(report.gpus.size(), 1u);  // only the job's GPUs are checked
  EXPECT_EQ(report.gpus[0].bus_id, "0000:34:00.0");
  ASSERT_EQ(report.Failures().size(), 1u) << HealthSummary(report);
  EXPECT_EQ(report.Failures()[0]->message, "gpuCount: NVML does not see 0000:99:00.0");
}

TEST_F(GpuHealthTest, ALostGpuFailsEveryCheck) {
  Break("lost=1");
  thresholds_.xid = false;
  HealthReport report = Check();
  int failed = 0;
  for (const CheckResult* f : report.Failures()) {
    EXPECT_EQ(f->bus_id, kBusIds[1]);
    EXPECT_NE(f->message.find("GPU is lost (15)"), std::string::npos) << f->message;
    ++failed;
  }
  EXPECT_EQ(failed, 6);  // ecc, retiredPages, remappedRows, pcieWidth, nvlink, throttle
}

TEST_F(GpuHealthTest, FunctionsMissingFromAnOldDriverAreNotSupported) {
  Break("clocks=0x8");  // read through the older ClocksThrottleReasons name
  HealthReport report = Check(FAKE_NVML_OLD_LIBRARY);
  ASSERT_TRUE(report.nvml_available) << report.nvml_problem;
  ExpectOnlyGpu1Fails(report, kCheckThrottle, "clocks held down by hwSlowdown");
  for (std::string_view check : {kCheckEcc, kCheckRemappedRows, kCheckNvLink, kCheckXid}) {
    for (const char* bus_id : kBusIds) {
      const CheckResult* r = Find(report, check, bus_id);
      ASSERT_NE(r, nullptr) << check;
      EXPECT_EQ(r->state, CheckState::kNotSupported) << r->message;
      EXPECT_NE(r->message.find("not in this driver"), std::string::npos) << r->message;
    }
  }
  EXPECT_EQ(Find(report, kCheckEcc, kBusIds[0])->message,
            "GPU 0000:1b:00.0 (index 0): ecc: nvmlDeviceGetEccMode: not in this driver");
  EXPECT_EQ(Find(report, kCheckPcieWidth, kBusIds[0])->state, CheckState::kPassed);
}

TEST_F(GpuHealthTest, CallsTheDriverDoesNotSupportAreNotSupported) {
  setenv("FAKE_NVML_NOT_SUPPORTED", "nvmlDeviceGetRetiredPagesPendingStatus,nvmlEventSetCreate", 1);
  Break("unsupported=nvmlDeviceGetCurrPcieLinkWidth");
  HealthReport report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);
  EXPECT_EQ(Find(report, kCheckRetiredPages, kBusIds[0])->state, CheckState::kNotSupported);
  EXPECT_EQ(Find(report, kCheckXid, kBusIds[0])->state, CheckState::kNotSupported);
  const CheckResult* width = Find(report, kCheckPcieWidth, kBusIds[1]);
  EXPECT_EQ(width->state, CheckState::kNotSupported);
  EXPECT_EQ(width->message,
            "GPU 0000:34:00.0 (index 1): pcieWidth: nvmlDeviceGetCurrPcieLinkWidth: Not Supported "
            "(3)");
  EXPECT_EQ(Find(report, kCheckPcieWidth, kBusIds[0])->state, CheckState::kPassed);
}

TEST_F(GpuHealthTest, WithoutNvmlTheNvmlCheckFails) {
  HealthReport report = Check("libnvidia-ml-does-not-exist.so.1");
  EXPECT_FALSE(report.nvml_available);
  ASSERT_EQ(report.results.size(), 1u);
  EXPECT_EQ(report.results[0].check, kCheckNvml);
  EXPECT_EQ(report.results[0].state, CheckState::kFailed);
  EXPECT_NE(report.results[0].message.find("nvml: NVML unusable: libnvidia-ml-does-not-exist"),
            std::string::npos)
      << report.results[0].message;
  setenv("FAKE_NVML_INIT_ERROR", "9", 1);
  report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.Failures()[0]->message.find("Driver Not Loaded"), std::string::npos);
  // Turned off: nothing is checked and nothing fails.
  thresholds_.nvml = false;
  report = Check();
  EXPECT_TRUE(report.ok());
  EXPECT_TRUE(report.results.empty());
}

TEST_F(GpuHealthTest, TurnedOffChecksYieldNoResult) {
  Break("pcie_width=8 clocks=0x8");
  thresholds_.pcie_width = false;
  thresholds_.throttle = false;
  HealthReport report = Check();
  EXPECT_TRUE(report.ok()) << HealthSummary(report);
  EXPECT_EQ(Find(report, kCheckPcieWidth, kBusIds[1]), nullptr);
  EXPECT_EQ(Find(report, kCheckThrottle, kBusIds[1]), nullptr);
}

TEST_F(GpuHealthTest, TheReportAsJson) {
  Break("pcie_width=4");
  json j = HealthReportJson(Check());
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["nvml"]["available"], true);
  EXPECT_EQ(j["node"]["gpuCount"]["result"], "passed");
  ASSERT_EQ(j["gpus"].size(), 4u);
  const json& gpu = j["gpus"][1];
  EXPECT_EQ(gpu["busId"], "0000:34:00.0");
  EXPECT_EQ(gpu["index"], 1);
  EXPECT_EQ(gpu["uuid"], "GPU-fake-1");
  EXPECT_EQ(gpu["checks"]["pcieWidth"],
            json({{"result", "failed"},
                  {"figures", {{"current", 4}, {"max", 16}}},
                  {"message",
                   "GPU 0000:34:00.0 (index 1): pcieWidth: PCIe link at x4, the GPU's "
                   "maximum is x16"}}));
  EXPECT_EQ(gpu["checks"]["ecc"]["result"], "passed");
  EXPECT_EQ(j["gpus"][0]["checks"]["pcieWidth"]["result"], "passed");
  EXPECT_EQ(j["failures"], json({gpu["checks"]["pcieWidth"]["message"]}));
}

}  // namespace
}  // namespace trainrun::gpu::testing
