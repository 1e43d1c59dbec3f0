#include "gpu/gpu_health.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

namespace trainrun::gpu {
namespace {

using nlohmann::json;
using Device = NvmlSession::Device;

struct CheckedGpu {
  HealthGpu info;
  Device device = nullptr;
};

// A GPU that answers this to any call is unusable, whatever the check asked.
bool GpuBroken(int rc) {
  return rc == kNvmlErrorGpuIsLost || rc == kNvmlErrorResetRequired ||
         rc == kNvmlErrorCorruptedInforom;
}

// Builds the results of one GPU's checks, each message naming the GPU and the check.
class GpuChecks {
 public:
  GpuChecks(const NvmlSession& nvml, const CheckedGpu& gpu, std::vector<CheckResult>* results)
      : nvml_(nvml), gpu_(gpu), results_(results) {}

  void Add(std::string_view check, CheckState state, json figures, const std::string& detail) {
    CheckResult r;
    r.check = std::string(check);
    r.gpu_index = gpu_.info.index;
    r.bus_id = gpu_.info.bus_id;
    r.state = state;
    r.figures = std::move(figures);
    r.message =
        fmt::format("GPU {} (index {}): {}: {}", gpu_.info.bus_id, gpu_.info.index, check, detail);
    results_->push_back(std::move(r));
  }

  // A call that did not answer. A missing function, NOT_SUPPORTED and the like
  // are "not supported"; a GPU that is lost, needs a reset or has a corrupt
  // InfoROM has failed whatever the check.
  void Unanswered(std::string_view check, std::string_view call, int rc) {
    Add(check, GpuBroken(rc) ? CheckState::kFailed : CheckState::kNotSupported,
        {{"nvmlError", nvml_.Describe(rc)}}, fmt::format("{}: {}", call, nvml_.Describe(rc)));
  }

  const NvmlSession& nvml() const { return nvml_; }
  Device device() const { return gpu_.device; }

 private:
  const NvmlSession& nvml_;
  const CheckedGpu& gpu_;
  std::vector<CheckResult>* results_;
};

void CheckEcc(GpuChecks& c, const HealthThresholds& t) {
  bool enabled = false, pending = false;
  if (int rc = c.nvml().EccMode(c.device(), &enabled, &pending); rc != kNvmlSuccess) {
    if (t.require_ecc && rc != kNvmlFunctionMissing) {
      c.Add(kCheckEcc, CheckState::kFailed, {{"nvmlError", c.nvml().Describe(rc)}},
            fmt::format("no ECC ({}) but requireEcc is true", c.nvml().Describe(rc)));
    } else {
      c.Unanswered(kCheckEcc, "nvmlDeviceGetEccMode", rc);
    }
    return;
  }
  json figures = {{"enabled", enabled}, {"pendingEnabled", pending}};
  if (!enabled) {
    c.Add(kCheckEcc, t.require_ecc ? CheckState::kFailed : CheckState::kNotSupported, figures,
          t.require_ecc ? "ECC is disabled but requireEcc is true"
                        : "ECC is disabled: uncorrectable errors are not counted");
    return;
  }
  uint64_t volatile_count = 0, aggregate_count = 0;
  if (int rc = c.nvml().UncorrectedEccErrors(c.device(), false, &volatile_count);
      rc != kNvmlSuccess) {
    c.Unanswered(kCheckEcc, "nvmlDeviceGetTotalEccErrors", rc);
    return;
  }
  figures["volatile"] = volatile_count;
  figures["maxVolatile"] = t.max_uncorrectable_ecc_errors;
  const int aggregate_rc = c.nvml().UncorrectedEccErrors(c.device(), true, &aggregate_count);
  figures["aggregate"] = aggregate_rc == kNvmlSuccess ? json(aggregate_count) : json(nullptr);
  figures["maxAggregate"] = t.max_aggregate_uncorrectable_ecc_errors
                                ? json(*t.max_aggregate_uncorrectable_ecc_errors)
                                : json(nullptr);
  if (volatile_count > static_cast<uint64_t>(t.max_uncorrectable_ecc_errors)) {
    c.Add(kCheckEcc, CheckState::kFailed, figures,
          fmt::format("{} uncorrectable ECC errors since the driver loaded (volatile), more than "
                      "maxUncorrectableEccErrors {}",
                      volatile_count, t.max_uncorrectable_ecc_errors));
    return;
  }
  if (t.max_aggregate_uncorrectable_ecc_errors && aggregate_rc == kNvmlSuccess &&
      aggregate_count > static_cast<uint64_t>(*t.max_aggregate_uncorrectable_ecc_errors)) {
    c.Add(kCheckEcc, CheckState::kFailed, figures,
          fmt::format("{} uncorrectable ECC errors over the GPU's life (aggregate), more than "
                      "maxAggregateUncorrectableEccErrors {}",
                      aggregate_count, *t.max_aggregate_uncorrectable_ecc_errors));
    return;
  }
  c.Add(kCheckEcc, CheckState::kPassed, figures,
        fmt::format("{} uncorrectable ECC errors (volatile), {} (aggregate)", volatile_count,
                    aggregate_rc == kNvmlSuccess ? std::to_string(aggregate_count) : "unknown"));
}

void CheckRetiredPages(GpuChecks& c) {
  bool pending = false;
  if (int rc = c.nvml().RetiredPagesPending(c.device(), &pending); rc != kNvmlSuccess) {
    c.Unanswered(kCheckRetiredPages, "nvmlDeviceGetRetiredPagesPendingStatus", rc);
    return;
  }
  if (pending) {
    c.Add(kCheckRetiredPages, CheckState::kFailed, {{"pending", true}},
          "memory pages wait to be retired: the GPU needs a reset");
  } else {
    c.Add(kCheckRetiredPages, CheckState::kPassed, {{"pending", false}},
          "no page retirement pending");
  }
}

void CheckRemappedRows(GpuChecks& c) {
  unsigned corrected = 0, uncorrected = 0;
  bool pending = false, failed = false;
  if (int rc = c.nvml().RemappedRows(c.device(), &corrected, &uncorrected, &pending, &failed);
      rc != kNvmlSuccess) {
    c.Unanswered(kCheckRemappedRows, "nvmlDeviceGetRemappedRows", rc);
    return;
  }
  json figures = {{"corrected", corrected},
                  {"uncorrected", uncorrected},
                  {"pending", pending},
                  {"failed", failed}};
  if (failed) {
    c.Add(kCheckRemappedRows, CheckState::kFailed, figures,
          "a row remapping failed: the GPU's memory cannot be repaired");
  } else if (pending) {
    c.Add(kCheckRemappedRows, CheckState::kFailed, figures,
          "a row remapping is pending: the GPU needs a reset");
  } else {
    c.Add(kCheckRemappedRows, CheckState::kPassed, figures,
          fmt::format("{} rows remapped (corrected errors), {} (uncorrected), none pending",
                      corrected, uncorrected));
  }
}

void CheckPcieWidth(GpuChecks& c) {
  unsigned current = 0, max = 0;
  if (int rc = c.nvml().PcieLinkWidth(c.device(), false, &current); rc != kNvmlSuccess) {
    c.Unanswered(kCheckPcieWidth, "nvmlDeviceGetCurrPcieLinkWidth", rc);
    return;
  }
  if (int rc = c.nvml().PcieLinkWidth(c.device(), true, &max); rc != kNvmlSuccess) {
    c.Unanswered(kCheckPcieWidth, "nvmlDeviceGetMaxPcieLinkWidth", rc);
    return;
  }
  json figures = {{"current", current}, {"max", max}};
  if (current < max) {
    c.Add(kCheckPcieWidth, CheckState::kFailed, figures,
          fmt::format("PCIe link at x{}, the GPU's maximum is x{}", current, max));
  } else {
    c.Add(kCheckPcieWidth, CheckState::kPassed, figures, fmt::format("PCIe link at x{}", current));
  }
}

void CheckPcieGeneration(GpuChecks& c) {
  unsigned current = 0, max = 0, pstate = 0;
  if (int rc = c.nvml().PcieLinkGeneration(c.device(), false, &current); rc != kNvmlSuccess) {
    c.Unanswered(kCheckPcieGeneration, "nvmlDeviceGetCurrPcieLinkGeneration", rc);
    return;
  }
  if (int rc = c.nvml().PcieLinkGeneration(c.device(), true, &max); rc != kNvmlSuccess) {
    c.Unanswered(kCheckPcieGeneration, "nvmlDeviceGetMaxPcieLinkGeneration", rc);
    return;
  }
  json figures = {{"current", current}, {"max", max}};
  if (current >= max) {
    c.Add(kCheckPcieGeneration, CheckState::kPassed, figures,
          fmt::format("PCIe link at generation {}", current));
    return;
  }
  // Below the maximum: a fault only when the GPU is busy. An idle GPU (P8 and
  // below) trains its link down to save power.
  if (int rc = c.nvml().PerformanceState(c.device(), &pstate); rc != kNvmlSuccess) {
    c.Unanswered(kCheckPcieGeneration, "nvmlDeviceGetPerformanceState", rc);
    return;
  }
  figures["performanceState"] = pstate;
  if (pstate != 0) {
    c.Add(kCheckPcieGeneration, CheckState::kNotSupported, figures,
          fmt::format("PCIe link at generation {} of {}, not compared: the GPU is idle (P{}) and "
                      "an idle GPU lowers its link generation",
                      current, max, pstate));
    return;
  }
  c.Add(kCheckPcieGeneration, CheckState::kFailed, figures,
        fmt::format("PCIe link at generation {} while busy (P0), the GPU's maximum is {}", current,
                    max));
}

void CheckNvLink(GpuChecks& c, const HealthThresholds& t) {
  std::vector<unsigned> active, inactive;
  for (unsigned link = 0; link < kNvmlMaxNvLinks; ++link) {
    bool is_active = false;
    const int rc = c.nvml().NvLinkState(c.device(), link, &is_active);
    if (rc == kNvmlFunctionMissing || GpuBroken(rc)) {
      c.Unanswered(kCheckNvLink, "nvmlDeviceGetNvLinkState", rc);
      return;
    }
    if (rc != kNvmlSuccess) continue;  // the GPU has no such link
    (is_active ? active : inactive).push_back(link);
  }
  const size_t links = active.size() + inactive.size();
  json figures = {{"links", links}, {"active", active.size()}, {"inactive", inactive}};
  if (t.min_active_nvlinks) figures["minActive"] = *t.min_active_nvlinks;
  if (t.min_active_nvlinks && active.size() < static_cast<size_t>(*t.min_active_nvlinks)) {
    c.Add(kCheckNvLink, CheckState::kFailed, figures,
          fmt::format(
              "{} of {} NVLinks active, fewer than minActiveNvLinks {}{}", active.size(), links,
              *t.min_active_nvlinks,
              inactive.empty() ? "" : fmt::format(" (inactive: {})", fmt::join(inactive, ", "))));
    return;
  }
  if (links == 0) {
    c.Add(kCheckNvLink, CheckState::kNotSupported, figures, "the GPU has no NVLink");
    return;
  }
  if (active.empty() && !t.min_active_nvlinks) {
    c.Add(kCheckNvLink, CheckState::kNotSupported, figures,
          fmt::format("none of the GPU's {} NVLinks is active (not connected?); set "
                      "minActiveNvLinks to require them",
                      links));
    return;
  }
  if (!inactive.empty() && !t.min_active_nvlinks) {
    c.Add(kCheckNvLink, CheckState::kFailed, figures,
          fmt::format("NVLink {} inactive ({} of {} active)", fmt::join(inactive, ", "),
                      active.size(), links));
    return;
  }
  c.Add(kCheckNvLink, CheckState::kPassed, figures,
        fmt::format("{} of {} NVLinks active", active.size(), links));
}

void CheckThrottle(GpuChecks& c, const HealthThresholds& t) {
  uint64_t reasons = 0;
  if (int rc = c.nvml().ClocksEventReasons(c.device(), &reasons); rc != kNvmlSuccess) {
    c.Unanswered(kCheckThrottle, "nvmlDeviceGetCurrentClocksEventReasons", rc);
    return;
  }
  const std::vector<std::string> active = ThrottleReasonNames(reasons);
  const std::vector<std::string> failing = ThrottleReasonNames(reasons & t.throttle_fail_mask);
  json figures = {{"reasons", active}, {"failing", failing}};
  if (!failing.empty()) {
    c.Add(kCheckThrottle, CheckState::kFailed, figures,
          fmt::format("clocks held down by {}", fmt::join(failing, ", ")));
  } else {
    c.Add(kCheckThrottle, CheckState::kPassed, figures,
          active.empty() ? std::string("no clocks event reason active")
                         : fmt::format("only {} active", fmt::join(active, ", ")));
  }
}

void CheckXids(const NvmlSession& nvml, const std::vector<CheckedGpu>& gpus,
               const HealthThresholds& t, std::vector<std::vector<CheckResult>>* per_gpu) {
  std::vector<Device> devices;
  for (const CheckedGpu& gpu : gpus) devices.push_back(gpu.device);
  std::vector<int> register_rc;
  std::vector<NvmlXid> xids;
  const int rc = nvml.WaitForXids(devices, t.xid_wait_ms, &register_rc, &xids);
  for (size_t i = 0; i < gpus.size(); ++i) {
    GpuChecks c(nvml, gpus[i], &(*per_gpu)[i]);
    if (rc != kNvmlSuccess) {
      c.Unanswered(kCheckXid, "nvmlEventSetCreate", rc);
      continue;
    }
    if (register_rc[i] != kNvmlSuccess) {
      c.Unanswered(kCheckXid, "nvmlDeviceRegisterEvents", register_rc[i]);
      continue;
    }
    std::vector<uint64_t> seen, failing;
    for (const NvmlXid& x : xids) {
      if (x.device != i) continue;
      seen.push_back(x.xid);
      if (std::find(t.ignored_xids.begin(), t.ignored_xids.end(), x.xid) == t.ignored_xids.end()) {
        failing.push_back(x.xid);
      }
    }
    json figures = {{"xids", seen}, {"waitedMilliseconds", t.xid_wait_ms}};
    if (!failing.empty()) {
      c.Add(kCheckXid, CheckState::kFailed, figures,
            fmt::format("XID {} reported within {} ms", fmt::join(failing, ", "), t.xid_wait_ms));
    } else {
      c.Add(kCheckXid, CheckState::kPassed, figures,
            seen.empty() ? fmt::format("no XID within {} ms", t.xid_wait_ms)
                         : fmt::format("only ignored XID {} within {} ms", fmt::join(seen, ", "),
                                       t.xid_wait_ms));
    }
  }
}

CheckResult NodeResult(std::string_view check, CheckState state, json figures,
                       const std::string& detail) {
  CheckResult r;
  r.check = std::string(check);
  r.state = state;
  r.figures = std::move(figures);
  r.message = fmt::format("{}: {}", check, detail);
  return r;
}

json ResultJson(const CheckResult& r) {
  return {{"result", CheckStateName(r.state)}, {"figures", r.figures}, {"message", r.message}};
}

}  // namespace

std::string_view CheckStateName(CheckState state) {
  switch (state) {
    case CheckState::kPassed: return "passed";
    case CheckState::kFailed: return "failed";
    case CheckState::kNotSupported: return "not supported";
  }
  return "?";
}

bool HealthReport::ok() const { return Failures().empty(); }

std::vector<const CheckResult*> HealthReport::Failures() const {
  std::vector<const CheckResult*> failures;
  for (const CheckResult& r : results) {
    if (r.state == CheckState::kFailed) failures.push_back(&r);
  }
  return failures;
}

HealthReport CheckGpuHealth(const HealthThresholds& t, const HealthOptions& options) {
  HealthReport report;
  report.nvml_library = options.nvml_library;
  NvmlSession nvml(options.nvml_library);
  if (!nvml.ok()) {
    report.nvml_problem = nvml.problem();
    if (t.nvml) {
      report.results.push_back(NodeResult(kCheckNvml, CheckState::kFailed,
                                          {{"library", options.nvml_library}},
                                          fmt::format("NVML unusable: {}", nvml.problem())));
    }
    return report;
  }
  report.nvml_available = true;
  if (t.nvml) {
    report.results.push_back(NodeResult(kCheckNvml, CheckState::kPassed,
                                        {{"library", options.nvml_library}},
                                        fmt::format("{} loaded", options.nvml_library)));
  }

  // The GPUs: every one NVML lists, or those asked for. A GPU NVML cannot name
  // (lost, no PCI info) cannot be checked and counts against gpuCount.
  std::set<std::string> wanted;
  for (const std::string& bus_id : options.bus_ids) {
    std::string normal = NormalizeBusId(bus_id);
    wanted.insert(normal.empty() ? bus_id : normal);
  }
  std::vector<std::string> problems;
  std::vector<CheckedGpu> gpus;
  unsigned count = 0;
  if (int rc = nvml.DeviceCount(&count); rc != kNvmlSuccess) {
    problems.push_back(fmt::format("nvmlDeviceGetCount: {}", nvml.Describe(rc)));
    count = 0;
  }
  std::set<std::string> seen;
  for (unsigned i = 0; i < count; ++i) {
    CheckedGpu gpu;
    gpu.info.index = static_cast<int>(i);
    if (int rc = nvml.DeviceHandle(i, &gpu.device); rc != kNvmlSuccess) {
      problems.push_back(fmt::format("GPU index {}: {}", i, nvml.Describe(rc)));
      continue;
    }
    std::string raw;
    if (int rc = nvml.PciBusId(gpu.device, &raw); rc != kNvmlSuccess) {
      problems.push_back(fmt::format("GPU index {}: no PCI bus id: {}", i, nvml.Describe(rc)));
      continue;
    }
    gpu.info.bus_id = NormalizeBusId(raw);
    if (gpu.info.bus_id.empty()) gpu.info.bus_id = raw;
    seen.insert(gpu.info.bus_id);
    if (!wanted.empty() && wanted.count(gpu.info.bus_id) == 0) continue;
    nvml.Uuid(gpu.device, &gpu.info.uuid);
    nvml.Name(gpu.device, &gpu.info.name);
    gpus.push_back(gpu);
  }
  for (const CheckedGpu& gpu : gpus) report.gpus.push_back(gpu.info);

  if (t.gpu_count) {
    std::vector<std::string> missing;
    for (const std::string& bus_id : wanted) {
      if (seen.count(bus_id) == 0) missing.push_back(bus_id);
    }
    const int expected = t.expected_gpu_count.value_or(1);
    json figures = {{"found", gpus.size()},
                    {"expected", t.expected_gpu_count ? json(expected) : json(nullptr)}};
    if (!missing.empty()) figures["missing"] = missing;
    if (!problems.empty()) figures["problems"] = problems;
    std::vector<std::string> why;
    if (static_cast<int>(gpus.size()) < expected) {
      why.push_back(t.expected_gpu_count ? fmt::format("NVML sees {} GPUs, the job expects {}",
                                                       gpus.size(), expected)
                                         : std::string("NVML sees no GPU"));
    }
    if (!missing.empty()) {
      why.push_back(fmt::format("NVML does not see {}", fmt::join(missing, ", ")));
    }
    for (const std::string& p : problems) why.push_back(p);
    if (!why.empty()) {
      report.results.push_back(NodeResult(kCheckGpuCount, CheckState::kFailed, figures,
                                          fmt::format("{}", fmt::join(why, "; "))));
    } else {
      report.results.push_back(NodeResult(
          kCheckGpuCount, CheckState::kPassed, figures,
          t.expected_gpu_count ? fmt::format("{} GPUs, the job expects {}", gpus.size(), expected)
                               : fmt::format("{} GPUs", gpus.size())));
    }
  }

  std::vector<std::vector<CheckResult>> per_gpu(gpus.size());
  for (size_t i = 0; i < gpus.size(); ++i) {
    GpuChecks c(nvml, gpus[i], &per_gpu[i]);
    if (t.ecc) CheckEcc(c, t);
    if (t.retired_pages) CheckRetiredPages(c);
    if (t.remapped_rows) CheckRemappedRows(c);
    if (t.pcie_width) CheckPcieWidth(c);
    if (t.pcie_generation) CheckPcieGeneration(c);
    if (t.nvlink) CheckNvLink(c, t);
    if (t.throttle) CheckThrottle(c, t);
  }
  // One wait for all GPUs, so the preflight waits xid_wait_ms once.
  if (t.xid && !gpus.empty()) CheckXids(nvml, gpus, t, &per_gpu);
  for (auto& results : per_gpu) {
    for (CheckResult& r : results) report.results.push_back(std::move(r));
  }
  return report;
}

json HealthReportJson(const HealthReport& report) {
  json node = json::object();
  json gpus = json::array();
  json failures = json::array();
  for (const HealthGpu& gpu : report.gpus) {
    gpus.push_back({{"index", gpu.index},
                    {"busId", gpu.bus_id},
                    {"uuid", gpu.uuid},
                    {"name", gpu.name},
                    {"checks", json::object()}});
  }
  for (const CheckResult& r : report.results) {
    if (r.state == CheckState::kFailed) failures.push_back(r.message);
    if (r.bus_id.empty()) {
      node[r.check] = ResultJson(r);
      continue;
    }
    for (size_t i = 0; i < report.gpus.size(); ++i) {
      if (report.gpus[i].bus_id == r.bus_id) gpus[i]["checks"][r.check] = ResultJson(r);
    }
  }
  return {{"ok", report.ok()},
          {"nvml",
           {{"library", report.nvml_library},
            {"available", report.nvml_available},
            {"problem", report.nvml_problem}}},
          {"node", node},
          {"gpus", gpus},
          {"failures", failures}};
}

std::string HealthSummary(const HealthReport& report) {
  int passed = 0, failed = 0, unsupported = 0;
  // Per check not supported: how many GPUs, and the first GPU's words.
  std::map<std::string, std::pair<int, std::string>> not_supported;
  for (const CheckResult& r : report.results) {
    switch (r.state) {
      case CheckState::kPassed: ++passed; break;
      case CheckState::kFailed: ++failed; break;
      case CheckState::kNotSupported: {
        ++unsupported;
        auto& entry = not_supported[r.check];
        if (entry.first++ == 0) entry.second = r.message;
        break;
      }
    }
  }
  std::string out =
      fmt::format("GPU health: {} GPUs, {} checks passed, {} failed, {} not supported\n",
                  report.gpus.size(), passed, failed, unsupported);
  for (const CheckResult* r : report.Failures()) out += fmt::format("  failed: {}\n", r->message);
  for (const std::string& check : HealthCheckNames()) {
    auto it = not_supported.find(check);
    if (it == not_supported.end()) continue;
    const auto& [gpus, message] = it->second;
    out += gpus == 1 ? fmt::format("  not supported: {}\n", message)
                     : fmt::format("  not supported on {} GPUs, e.g. {}\n", gpus, message);
  }
  return out;
}

}  // namespace trainrun::gpu
