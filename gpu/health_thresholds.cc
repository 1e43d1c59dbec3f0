// HealthThresholds: the names of checks and throttle reasons, and reading the
// thresholds from the job file's JSON (declared in gpu/gpu_health.h).
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "base/field_errors.h"
#include "base/field_suggest.h"
#include "base/text.h"
#include "gpu/gpu_health.h"

namespace trainrun::gpu {
namespace {

using nlohmann::json;

struct ReasonName {
  uint64_t bit;
  const char* name;
};
constexpr ReasonName kReasons[] = {
    {kReasonGpuIdle, "gpuIdle"},
    {kReasonApplicationsClocks, "applicationsClocksSetting"},
    {kReasonSwPowerCap, "swPowerCap"},
    {kReasonHwSlowdown, "hwSlowdown"},
    {kReasonSyncBoost, "syncBoost"},
    {kReasonSwThermalSlowdown, "swThermalSlowdown"},
    {kReasonHwThermalSlowdown, "hwThermalSlowdown"},
    {kReasonHwPowerBrakeSlowdown, "hwPowerBrakeSlowdown"},
    {kReasonDisplayClockSetting, "displayClockSetting"},
};

// Where each check's switch lives in HealthThresholds.
bool* Switch(HealthThresholds* t, std::string_view check) {
  if (check == kCheckNvml) return &t->nvml;
  if (check == kCheckGpuCount) return &t->gpu_count;
  if (check == kCheckEcc) return &t->ecc;
  if (check == kCheckRetiredPages) return &t->retired_pages;
  if (check == kCheckRemappedRows) return &t->remapped_rows;
  if (check == kCheckPcieWidth) return &t->pcie_width;
  if (check == kCheckPcieGeneration) return &t->pcie_generation;
  if (check == kCheckNvLink) return &t->nvlink;
  if (check == kCheckThrottle) return &t->throttle;
  if (check == kCheckXid) return &t->xid;
  return nullptr;
}

// An integer from min to max, checked on the JSON value before any conversion.
bool ReadInt(const json& v, const std::string& at, int64_t min, int64_t max, int64_t* out,
             FieldErrors* errors) {
  bool fits = false;
  int64_t value = 0;
  if (v.is_number_unsigned()) {
    fits = v.get<uint64_t>() <= static_cast<uint64_t>(max);
    if (fits) value = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    value = v.get<int64_t>();
    fits = true;
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    fits = d >= static_cast<double>(min) && d <= static_cast<double>(max) && std::floor(d) == d;
    if (fits) value = static_cast<int64_t>(d);
  }
  fits = fits && value >= min && value <= max;
  if (!fits) {
    errors->Add(at, fmt::format("must be an integer from {} to {}, got {}", min, max, v.dump()));
    return false;
  }
  *out = value;
  return true;
}

bool ReadBool(const json& v, const std::string& at, bool* out, FieldErrors* errors) {
  if (!v.is_boolean()) {
    errors->Add(at, fmt::format("must be true or false, got {}", JsonTypeName(v)));
    return false;
  }
  *out = v.get<bool>();
  return true;
}

constexpr int64_t kMaxCount = int64_t{1} << 53;  // exact in a JSON double

}  // namespace

const std::vector<std::string>& HealthCheckNames() {
  static const std::vector<std::string> kNames = {std::string(kCheckNvml),
                                                  std::string(kCheckGpuCount),
                                                  std::string(kCheckEcc),
                                                  std::string(kCheckRetiredPages),
                                                  std::string(kCheckRemappedRows),
                                                  std::string(kCheckPcieWidth),
                                                  std::string(kCheckPcieGeneration),
                                                  std::string(kCheckNvLink),
                                                  std::string(kCheckThrottle),
                                                  std::string(kCheckXid)};
  return kNames;
}

std::vector<std::string> ThrottleReasonNames(uint64_t mask) {
  std::vector<std::string> names;
  for (int bit = 0; bit < 64; ++bit) {
    const uint64_t value = uint64_t{1} << bit;
    if ((mask & value) == 0) continue;
    auto known = std::find_if(std::begin(kReasons), std::end(kReasons),
                              [&](const ReasonName& r) { return r.bit == value; });
    names.push_back(known != std::end(kReasons) ? known->name : fmt::format("{:#x}", value));
  }
  return names;
}

bool HealthThresholds::Enabled(std::string_view check) const {
  bool* on = Switch(const_cast<HealthThresholds*>(this), check);
  return on != nullptr && *on;
}

Result<HealthThresholds> ParseHealthThresholds(const json& object, const std::string& pointer) {
  HealthThresholds t;
  FieldErrors errors;
  if (!object.is_object()) {
    errors.Add(pointer, fmt::format("must be an object, got {}", JsonTypeName(object)));
    return errors.ToStatus();
  }
  static const std::vector<std::string> kFields = {"checks",
                                                   "expectedGpuCount",
                                                   "maxUncorrectableEccErrors",
                                                   "maxAggregateUncorrectableEccErrors",
                                                   "requireEcc",
                                                   "minActiveNvLinks",
                                                   "throttleReasons",
                                                   "xidWaitMilliseconds",
                                                   "ignoredXids"};
  auto members = MatchFields(object, pointer, kFields, &errors);
  // JSON null is "not given", as elsewhere in the job file.
  auto get = [&](const char* name) -> std::pair<const json*, std::string> {
    auto it = members.find(name);
    if (it == members.end() || it->second.value->is_null()) return {nullptr, ""};
    return {it->second.value, it->second.pointer};
  };
  int64_t value = 0;
  if (auto [v, at] = get("checks"); v != nullptr) {
    if (!v->is_object()) {
      errors.Add(at, fmt::format("must be an object of check names and true or false, got {}",
                                 JsonTypeName(*v)));
    } else {
      for (const auto& [name, entry] : MatchFields(*v, at, HealthCheckNames(), &errors, "check")) {
        ReadBool(*entry.value, entry.pointer, Switch(&t, name), &errors);
      }
    }
  }
  if (auto [v, at] = get("expectedGpuCount"); v != nullptr) {
    if (ReadInt(*v, at, 1, 4096, &value, &errors)) t.expected_gpu_count = static_cast<int>(value);
  }
  if (auto [v, at] = get("maxUncorrectableEccErrors"); v != nullptr) {
    if (ReadInt(*v, at, 0, kMaxCount, &value, &errors)) t.max_uncorrectable_ecc_errors = value;
  }
  if (auto [v, at] = get("maxAggregateUncorrectableEccErrors"); v != nullptr) {
    if (ReadInt(*v, at, 0, kMaxCount, &value, &errors)) {
      t.max_aggregate_uncorrectable_ecc_errors = value;
    }
  }
  if (auto [v, at] = get("requireEcc"); v != nullptr) ReadBool(*v, at, &t.require_ecc, &errors);
  if (auto [v, at] = get("minActiveNvLinks"); v != nullptr) {
    if (ReadInt(*v, at, 0, kNvmlMaxNvLinks, &value, &errors)) {
      t.min_active_nvlinks = static_cast<int>(value);
    }
  }
  if (auto [v, at] = get("throttleReasons"); v != nullptr) {
    std::vector<std::string> known;
    for (const ReasonName& r : kReasons) known.push_back(r.name);
    if (!v->is_array()) {
      errors.Add(at, fmt::format("must be an array of reason names ({}), got {}",
                                 fmt::join(known, ", "), JsonTypeName(*v)));
    } else {
      t.throttle_fail_mask = 0;
      for (size_t i = 0; i < v->size(); ++i) {
        const json& item = (*v)[i];
        const std::string item_at = fmt::format("{}/{}", at, i);
        const ReasonName* match = nullptr;
        for (const ReasonName& r : kReasons) {
          if (item.is_string() && ToLower(r.name) == ToLower(item.get<std::string>())) match = &r;
        }
        if (match != nullptr) {
          t.throttle_fail_mask |= match->bit;
          continue;
        }
        std::string hint = item.is_string() ? NearestName(item.get<std::string>(), known) : "";
        errors.Add(item_at, hint.empty()
                                ? fmt::format("{} is not a throttle reason; they are {}",
                                              item.dump(), fmt::join(known, ", "))
                                : fmt::format("{} is not a throttle reason; did you mean \"{}\"?",
                                              item.dump(), hint));
      }
    }
  }
  if (auto [v, at] = get("xidWaitMilliseconds"); v != nullptr) {
    if (ReadInt(*v, at, 0, kMaxXidWaitMilliseconds, &value, &errors)) {
      t.xid_wait_ms = static_cast<int>(value);
    }
  }
  if (auto [v, at] = get("ignoredXids"); v != nullptr) {
    if (!v->is_array()) {
      errors.Add(at, fmt::format("must be an array of XID numbers, got {}", JsonTypeName(*v)));
    } else {
      for (size_t i = 0; i < v->size(); ++i) {
        if (ReadInt((*v)[i], fmt::format("{}/{}", at, i), 0, kMaxCount, &value, &errors)) {
          t.ignored_xids.push_back(static_cast<uint64_t>(value));
        }
      }
    }
  }
  if (!errors.empty()) return errors.ToStatus();
  return t;
}

json HealthThresholdsJson(const HealthThresholds& t) {
  json checks = json::object();
  for (const std::string& name : HealthCheckNames()) checks[name] = t.Enabled(name);
  json out = {
      {"checks", checks},
      {"expectedGpuCount", t.expected_gpu_count ? json(*t.expected_gpu_count) : json(nullptr)},
      {"maxUncorrectableEccErrors", t.max_uncorrectable_ecc_errors},
      {"maxAggregateUncorrectableEccErrors", t.max_aggregate_uncorrectable_ecc_errors
                                                 ? json(*t.max_aggregate_uncorrectable_ecc_errors)
                                                 : json(nullptr)},
      {"requireEcc", t.require_ecc},
      {"minActiveNvLinks", t.min_active_nvlinks ? json(*t.min_active_nvlinks) : json(nullptr)},
      {"throttleReasons", ThrottleReasonNames(t.throttle_fail_mask)},
      {"xidWaitMilliseconds", t.xid_wait_ms},
      {"ignoredXids", t.ignored_xids},
  };
  return out;
}

}  // namespace trainrun::gpu
