// The health thresholds as a job file gives them: defaults, every field, and errors
// that name the field by its full JSON pointer.
#include <algorithm>

#include <gtest/gtest.h>

#include "gpu/gpu_health.h"

namespace trainrun::gpu::testing {
namespace {

using ::nlohmann::json;

constexpr const char* kAt = "/preflight/health";

std::string ErrorOf(const json& object) {
  Result<HealthThresholds> t = ParseHealthThresholds(object, kAt);
  EXPECT_FALSE(t.ok());
  if (t.ok()) return "";
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidJob);
  return t.status().message();
}

TEST(HealthThresholdsTest, AnEmptyObjectGivesTheDefaults) {
  Result<HealthThresholds> t = ParseHealthThresholds(json::object(), kAt);
  ASSERT_TRUE(t.ok()) << t.status().message();
  for (const std::string& check : HealthCheckNames()) {
    EXPECT_EQ(t->Enabled(check), check != "pcieGeneration") << check;
  }
  EXPECT_FALSE(t->Enabled("nonsense"));
  EXPECT_FALSE(t->expected_gpu_count.has_value());
  EXPECT_EQ(t->max_uncorrectable_ecc_errors, 0);
  EXPECT_FALSE(t->max_aggregate_uncorrectable_ecc_errors.has_value());
  EXPECT_FALSE(t->require_ecc);
  EXPECT_FALSE(t->min_active_nvlinks.has_value());
  EXPECT_EQ(t->throttle_fail_mask, kDefaultThrottleFailMask);
  EXPECT_EQ(t->xid_wait_ms, 100);
  EXPECT_TRUE(t->ignored_xids.empty());
  EXPECT_EQ(HealthThresholdsJson(*t)["throttleReasons"],
            json({"hwSlowdown", "swThermalSlowdown", "hwThermalSlowdown", "hwPowerBrakeSlowdown"}));
}

TEST(HealthThresholdsTest, ReadsEveryField) {
  json object = {{"checks", {{"pcieGeneration", true}, {"XID", false}}},
                 {"expectedGpuCount", 8},
                 {"maxUncorrectableEccErrors", 2},
                 {"maxAggregateUncorrectableEccErrors", 10},
                 {"requireEcc", true},
                 {"minActiveNvLinks", 18},
                 {"throttleReasons", {"hwSlowdown", "SWPOWERCAP"}},
                 {"xidWaitMilliseconds", 0},
                 {"ignoredXids", {13, 43}}};
  Result<HealthThresholds> t = ParseHealthThresholds(object, kAt);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_TRUE(t->pcie_generation);
  EXPECT_FALSE(t->xid);
  EXPECT_TRUE(t->ecc);
  EXPECT_EQ(t->expected_gpu_count, 8);
  EXPECT_EQ(t->max_uncorrectable_ecc_errors, 2);
  EXPECT_EQ(t->max_aggregate_uncorrectable_ecc_errors, 10);
  EXPECT_TRUE(t->require_ecc);
  EXPECT_EQ(t->min_active_nvlinks, 18);
  EXPECT_EQ(t->throttle_fail_mask, kReasonHwSlowdown | kReasonSwPowerCap);
  EXPECT_EQ(t->xid_wait_ms, 0);
  EXPECT_EQ(t->ignored_xids, (std::vector<uint64_t>{13, 43}));
  // And back: every field present.
  json back = HealthThresholdsJson(*t);
  EXPECT_EQ(back["checks"]["xid"], false);
  EXPECT_EQ(back["throttleReasons"], json({"swPowerCap", "hwSlowdown"}));
  Result<HealthThresholds> again = ParseHealthThresholds(back, kAt);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(HealthThresholdsJson(*again), back);
}

TEST(HealthThresholdsTest, NullIsNotGiven) {
  Result<HealthThresholds> t =
      ParseHealthThresholds({{"expectedGpuCount", nullptr}, {"checks", nullptr}}, kAt);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_FALSE(t->expected_gpu_count.has_value());
}

TEST(HealthThresholdsTest, ErrorsNameTheField) {
  EXPECT_EQ(ErrorOf({{"maxUncorectableEccErrors", 1}}),
            "/preflight/health/maxUncorectableEccErrors: unknown field; did you mean "
            "\"maxUncorrectableEccErrors\"?");
  EXPECT_EQ(ErrorOf({{"checks", {{"pcieWidht", false}}}}),
            "/preflight/health/checks/pcieWidht: unknown check; did you mean \"pcieWidth\"?");
  EXPECT_EQ(ErrorOf({{"checks", {{"ecc", "no"}}}}),
            "/preflight/health/checks/ecc: must be true or false, got a string");
  EXPECT_EQ(ErrorOf({{"checks", true}}),
            "/preflight/health/checks: must be an object of check names and true or false, got "
            "a boolean");
  EXPECT_EQ(ErrorOf({{"maxUncorrectableEccErrors", -1}}),
            "/preflight/health/maxUncorrectableEccErrors: must be an integer from 0 to "
            "9007199254740992, got -1");
  EXPECT_EQ(ErrorOf({{"expectedGpuCount", 1.5}}),
            "/preflight/health/expectedGpuCount: must be an integer from 1 to 4096, got 1.5");
  EXPECT_EQ(ErrorOf({{"minActiveNvLinks", 19}}),
            "/preflight/health/minActiveNvLinks: must be an integer from 0 to 18, got 19");
  EXPECT_EQ(ErrorOf({{"xidWaitMilliseconds", 18446744073709551615u}}),
            "/preflight/health/xidWaitMilliseconds: must be an integer from 0 to 60000, got "
            "18446744073709551615");
  EXPECT_EQ(ErrorOf({{"throttleReasons", {"hwSlowdwn"}}}),
            "/preflight/health/throttleReasons/0: \"hwSlowdwn\" is not a throttle reason; did "
            "you mean \"hwSlowdown\"?");
  EXPECT_EQ(ErrorOf({{"ignoredXids", {79, "x"}}}),
            "/preflight/health/ignoredXids/1: must be an integer from 0 to 9007199254740992, got "
            "\"x\"");
  EXPECT_EQ(ErrorOf({{"requireEcc", 1}}),
            "/preflight/health/requireEcc: must be true or false, got an integer");
  EXPECT_EQ(ErrorOf({{"requireECC", true}, {"requireEcc", false}}),
            "/preflight/health/requireEcc: \"requireEcc\" is given twice");
  EXPECT_EQ(ErrorOf(json::array()), "/preflight/health: must be an object, got an array");
}

TEST(HealthThresholdsTest, EveryErrorIsReportedAtOnce) {
  std::string message = ErrorOf({{"requireEcc", "yes"}, {"bogus", 1}, {"checks", {{"nvlink", 0}}}});
  EXPECT_NE(message.find("/preflight/health/requireEcc: must be true or false"), std::string::npos);
  EXPECT_NE(message.find("/preflight/health/bogus: unknown field; known fields here are checks, "
                         "expectedGpuCount"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("/preflight/health/checks/nvlink: must be true or false"),
            std::string::npos);
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2);
}

TEST(HealthThresholdsTest, ReasonNames) {
  EXPECT_EQ(ThrottleReasonNames(0), std::vector<std::string>{});
  EXPECT_EQ(ThrottleReasonNames(kReasonGpuIdle | kReasonHwPowerBrakeSlowdown | 0x200),
            (std::vector<std::string>{"gpuIdle", "hwPowerBrakeSlowdown", "0x200"}));
}

}  // namespace
}  // namespace trainrun::gpu::testing
