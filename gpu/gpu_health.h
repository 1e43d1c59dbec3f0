// GPU health from NVML, per GPU, before a job starts: the checks a preflight runs to
// keep a node with a broken GPU out of a multi-node job.
//
// Every check has a name (as the job file and run.json spell it), a threshold and a
// default; each yields, per GPU (by NVML index and PCI bus id), passed, failed or not
// supported, with its figures and a one-line message that names the GPU and the check:
//
// clang-format off
//   check           what it reads (NVML)                         fails when (default)
//   nvml            nvmlInit_v2 of libnvidia-ml                  NVML cannot be loaded or initialised (on)
//   gpuCount        nvmlDeviceGetCount_v2                        fewer GPUs than expectedGpuCount, or none (on)
//   ecc             nvmlDeviceGetEccMode,                        volatile uncorrectable errors > maxUncorrectableEccErrors (0),
//                   nvmlDeviceGetTotalEccErrors                  aggregate > maxAggregateUncorrectableEccErrors (no limit),
//                                                                ECC disabled while requireEcc (false) (on)
//   retiredPages    nvmlDeviceGetRetiredPagesPendingStatus       a page retirement waits for a GPU reset (on)
//   remappedRows    nvmlDeviceGetRemappedRows                    a row remapping is pending or has failed (on)
//   pcieWidth       nvmlDeviceGet{Curr,Max}PcieLinkWidth         current width < max width (on)
//   pcieGeneration  nvmlDeviceGet{Curr,Max}PcieLinkGeneration,   current generation < max while the GPU is in
//                   nvmlDeviceGetPerformanceState                P0 (off: an idle GPU downshifts its link)
//   nvlink          nvmlDeviceGetNvLinkState, links 0..17        a link is inactive while others are active, or
//                                                                fewer active than minActiveNvLinks (unset) (on)
//   throttle        nvmlDeviceGetCurrentClocksEventReasons       a reason in throttleReasons is active: hwSlowdown,
//                   (or ...ClocksThrottleReasons, older)         swThermalSlowdown, hwThermalSlowdown,
//                                                                hwPowerBrakeSlowdown (on)
//   xid             nvmlEventSetCreate, nvmlDeviceRegisterEvents an XID critical error arrives within
//                   (XID critical errors), nvmlEventSetWait_v2   xidWaitMilliseconds (100), not in ignoredXids (on)
// clang-format on
//
// "Not supported" means the check could not judge this GPU: the driver lacks the call
// (an older libnvidia-ml without the symbol, or NVML_ERROR_NOT_SUPPORTED /
// FUNCTION_NOT_FOUND), the GPU lacks the feature (no ECC, no NVLink), or, for
// pcieGeneration, the GPU is idle. It never fails a preflight.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "gpu/nvml_loader.h"

namespace trainrun::gpu {

// The checks' names, as the job file ("checks": {"pcieGeneration": true}) and
// run.json spell them, in the order they run and are reported.
inline constexpr std::string_view kCheckNvml = "nvml";
inline constexpr std::string_view kCheckGpuCount = "gpuCount";
inline constexpr std::string_view kCheckEcc = "ecc";
inline constexpr std::string_view kCheckRetiredPages = "retiredPages";
inline constexpr std::string_view kCheckRemappedRows = "remappedRows";
inline constexpr std::string_view kCheckPcieWidth = "pcieWidth";
inline constexpr std::string_view kCheckPcieGeneration = "pcieGeneration";
inline constexpr std::string_view kCheckNvLink = "nvlink";
inline constexpr std::string_view kCheckThrottle = "throttle";
inline constexpr std::string_view kCheckXid = "xid";

// All of them, in that order.
const std::vector<std::string>& HealthCheckNames();

// NVML's clocks event (throttle) reasons, by the names the job file uses.
// clang-format off
inline constexpr uint64_t kReasonGpuIdle              = 0x1;    // "gpuIdle"
inline constexpr uint64_t kReasonApplicationsClocks   = 0x2;    // "applicationsClocksSetting"
inline constexpr uint64_t kReasonSwPowerCap           = 0x4;    // "swPowerCap"
inline constexpr uint64_t kReasonHwSlowdown           = 0x8;    // "hwSlowdown"
inline constexpr uint64_t kReasonSyncBoost            = 0x10;   // "syncBoost"
inline constexpr uint64_t kReasonSwThermalSlowdown    = 0x20;   // "swThermalSlowdown"
inline constexpr uint64_t kReasonHwThermalSlowdown    = 0x40;   // "hwThermalSlowdown"
inline constexpr uint64_t kReasonHwPowerBrakeSlowdown = 0x80;   // "hwPowerBrakeSlowdown"
inline constexpr uint64_t kReasonDisplayClockSetting  = 0x100;  // "displayClockSetting"
// clang-format on
// Hardware slowdown, thermal (hardware and software) and power brake: the reasons
// that mean a GPU runs slower than its peers for a reason outside the job. Power
// capping and idling are normal and are only reported.
inline constexpr uint64_t kDefaultThrottleFailMask = kReasonHwSlowdown | kReasonSwThermalSlowdown |
                                                     kReasonHwThermalSlowdown |
                                                     kReasonHwPowerBrakeSlowdown;

// The names of the reasons set in `mask`, in bit order ("hwSlowdown", ...); an
// unknown bit is "0x200".
std::vector<std::string> ThrottleReasonNames(uint64_t mask);

inline constexpr int64_t kDefaultMaxUncorrectableEccErrors = 0;
inline constexpr int kDefaultXidWaitMilliseconds = 100;
inline constexpr int kMaxXidWaitMilliseconds = 60'000;

// The thresholds, with their defaults; a job file's object of the same names (see
// ParseHealthThresholds) overrides them field by field.
struct HealthThresholds {
  // Which checks run ("checks": {"NAME": true|false}); a check turned off yields no
  // result at all. pcieGeneration is off by default: GPUs lower their PCIe link
  // generation when idle (and a preflight runs on idle GPUs), so current < max is
  // normal then; when it is on, the generation is compared only on a GPU in
  // performance state P0 and is "not supported" (idle) otherwise. Width does not
  // downshift, so pcieWidth is on.
  bool nvml = true;
  bool gpu_count = true;
  bool ecc = true;
  bool retired_pages = true;
  bool remapped_rows = true;
  bool pcie_width = true;
  bool pcie_generation = false;
  bool nvlink = true;
  bool throttle = true;
  bool xid = true;

  // "expectedGpuCount": the GPUs NVML must see on this node (fewer fails; more is
  // fine: a job may use some of a node's GPUs). Unset: at least one. The preflight
  // fills it from the job when the job file does not say.
  std::optional<int> expected_gpu_count;
  // "maxUncorrectableEccErrors": volatile (since the last driver load or GPU reset)
  // uncorrectable ECC errors allowed per GPU.
  int64_t max_uncorrectable_ecc_errors = kDefaultMaxUncorrectableEccErrors;
  // "maxAggregateUncorrectableEccErrors": over the GPU's lifetime. Unset: not
  // limited (only reported), since a GPU whose old errors were retired or remapped
  // away is healthy.
  std::optional<int64_t> max_aggregate_uncorrectable_ecc_errors;
  // "requireEcc": a GPU with ECC disabled (or without ECC) fails instead of "not
  // supported".
  bool require_ecc = false;
  // "minActiveNvLinks": active NVLinks each GPU must have. Unset: any inactive link
  // of a GPU with at least one active link fails; a GPU with none active (a PCIe
  // card without a bridge) is "not supported".
  std::optional<int> min_active_nvlinks;
  // "throttleReasons": the reasons that fail ("hwSlowdown", ...), as a mask.
  uint64_t throttle_fail_mask = kDefaultThrottleFailMask;
  // "xidWaitMilliseconds": how long to listen for XID critical errors, for all
  // GPUs together (0 to kMaxXidWaitMilliseconds). NVML only reports XIDs that happen
  // while it listens, so this catches a GPU that keeps raising them, not one that
  // raised one before.
  int xid_wait_ms = kDefaultXidWaitMilliseconds;
  // "ignoredXids": XIDs that do not fail (e.g. 13 and 43, usually an application's
  // fault, when another job shares the node).
  std::vector<uint64_t> ignored_xids;

  // Whether the named check is on; false for an unknown name.
  bool Enabled(std::string_view check) const;
};

// Reads thresholds from a JSON object (the job file's preflight health object):
// fields as named above (matched case-insensitively), each optional, plus "checks":
// {NAME: bool}. `pointer` is where the object sits in the job file (e.g.
// "/preflight/health"); every error names the field by its full pointer, one line
// each: "/preflight/health/checks/pcieWidht: unknown check; did you mean
// \"pcieWidth\"?". Returns kInvalidJob on any error (all of them in the message).
Result<HealthThresholds> ParseHealthThresholds(const nlohmann::json& object,
                                               const std::string& pointer);

// The thresholds as JSON, every field present (for run.json and `trainrun check`).
nlohmann::json HealthThresholdsJson(const HealthThresholds& thresholds);

enum class CheckState { kPassed, kFailed, kNotSupported };

// "passed", "failed", "not supported".
std::string_view CheckStateName(CheckState state);

// One check on one GPU, or on the node (nvml, gpuCount: gpu_index -1, bus_id "").
struct CheckResult {
  std::string check;   // one of HealthCheckNames()
  int gpu_index = -1;  // NVML's index
  std::string bus_id;  // "0000:34:00.0"
  CheckState state = CheckState::kPassed;
  // What was read, e.g. {"current": 4, "max": 16}; an object, possibly empty.
  nlohmann::json figures = nlohmann::json::object();
  // One line naming the GPU and the check, e.g. "GPU 0000:34:00.0 (index 3):
  // pcieWidth: link at x4, the GPU's maximum is x16"; for node checks "gpuCount:
  // ...".
  std::string message;
};

struct HealthGpu {
  int index = 0;       // NVML's index
  std::string bus_id;  // "0000:34:00.0"
  std::string uuid;
  std::string name;
};

struct HealthReport {
  std::string nvml_library;  // what was dlopen'ed
  bool nvml_available = false;
  std::string nvml_problem;     // why NVML was not usable, or "" (see NvmlReport)
  std::vector<HealthGpu> gpus;  // the GPUs checked, in NVML index order
  // Per GPU (in `gpus` order) its checks in HealthCheckNames() order; the node
  // checks first.
  std::vector<CheckResult> results;

  bool ok() const;  // no result failed
  std::vector<const CheckResult*> Failures() const;
};

struct HealthOptions {
  std::string nvml_library = kDefaultNvmlLibrary;
  // Check only these GPUs (bus ids, any spelling NormalizeBusId accepts); empty:
  // every GPU NVML sees. A listed GPU NVML does not see fails gpuCount.
  std::vector<std::string> bus_ids;
};

// Loads NVML, runs the enabled checks on every GPU and unloads NVML. Never fails:
// what NVML could not tell is a "not supported" result; NVML missing is a failed
// "nvml" result (every other check then yields nothing). Blocks for about
// thresholds.xid_wait_ms when xid is on. Not thread-safe against other NVML users
// in the process.
HealthReport CheckGpuHealth(const HealthThresholds& thresholds, const HealthOptions& options = {});

// The report as JSON, for run.json's details.preflight:
//   {"ok": bool, "nvml": {"library", "available", "problem"},
//    "node": {CHECK: {"result", "figures", "message"}},
//    "gpus": [{"index", "busId", "uuid", "name",
//              "checks": {CHECK: {"result", "figures", "message"}}}],
//    "failures": ["message", ...]}
// "result" is CheckStateName().
nlohmann::json HealthReportJson(const HealthReport& report);

// A short console summary: one line of counts ("GPU health: 8 GPUs, 62 checks passed,
// 1 failed, 8 not supported"), then one line per failure ("  failed: MESSAGE"), then
// one line per check that was not supported ("  not supported on 8 GPUs, e.g.
// MESSAGE", the first GPU's). Each line ends in '\n'.
std::string HealthSummary(const HealthReport& report);

}  // namespace trainrun::gpu
