#include "gpu/nvml_loader.h"

#include <dlfcn.h>

#include <cctype>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

namespace trainrun::gpu {
namespace {

// The NVML types and calls trainrun uses, declared from NVML's documented, stable C
// ABI so no NVIDIA header is needed to build.
using nvmlReturn_t = int;
using nvmlDevice_t = NvmlSession::Device;
using nvmlEventSet_t = struct nvmlEventSet_st*;
constexpr unsigned kNvmlStringBuffer = 96;  // >= the UUID (80) and name (96) buffer sizes
constexpr unsigned long long kNvmlEventTypeXidCriticalError = 0x8;
constexpr int kNvmlMemoryErrorUncorrected = 1;  // nvmlMemoryErrorType_t
constexpr int kNvmlVolatileEcc = 0;             // nvmlEccCounterType_t
constexpr int kNvmlAggregateEcc = 1;

struct nvmlPciInfo_t {  // nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v3
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
};

struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;  // the XID for an XID critical error
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
  unsigned char reserved[64];  // room should a later driver append fields
};

using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using CountFn = nvmlReturn_t (*)(unsigned int*);
using HandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using PciFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlPciInfo_t*);
using StringFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);
using ErrorStringFn = const char* (*)(nvmlReturn_t);
using EccModeFn = nvmlReturn_t (*)(nvmlDevice_t, int*, int*);
using EccCountFn = nvmlReturn_t (*)(nvmlDevice_t, int, int, unsigned long long*);
using EnableStateFn = nvmlReturn_t (*)(nvmlDevice_t, int*);
using RemappedRowsFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, unsigned int*, unsigned int*,
                                        unsigned int*);
using UintFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*);
using PstateFn = nvmlReturn_t (*)(nvmlDevice_t, int*);
using NvLinkStateFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int, int*);
using ReasonsFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned long long*);
using EventSetCreateFn = nvmlReturn_t (*)(nvmlEventSet_t*);
using EventSetFreeFn = nvmlReturn_t (*)(nvmlEventSet_t);
using RegisterEventsFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned long long, nvmlEventSet_t);
using EventSetWaitFn = nvmlReturn_t (*)(nvmlEventSet_t, nvmlEventData_t*, unsigned int);

}  // namespace

std::string NormalizeBusId(const std::string& bus_id) {
  // domain:bus:device.function, all hexadecimal, nothing else.
  unsigned parts[4] = {};
  const char separators[4] = {':', ':', '.', '\0'};
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    size_t digits = 0;
    while (pos < bus_id.size() && std::isxdigit(static_cast<unsigned char>(bus_id[pos]))) {
      if (++digits > 8) return "";
      char c = static_cast<char>(std::tolower(static_cast<unsigned char>(bus_id[pos++])));
      parts[i] = parts[i] * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (digits == 0) return "";
    if (i < 3) {
      if (pos >= bus_id.size() || bus_id[pos] != separators[i]) return "";
      ++pos;
    }
  }
  if (pos != bus_id.size()) return "";
  if (parts[0] > 0xffff || parts[1] > 0xff || parts[2] > 0x1f || parts[3] > 7) return "";
  return fmt::format("{:04x}:{:02x}:{:02x}.{:x}", parts[0], parts[1], parts[2], parts[3]);
}

NvmlSession::NvmlSession(const std::string& library) : library_(library) {
  dlerror();
  handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    const char* error = dlerror();
    problem_ = error != nullptr ? error : fmt::format("{}: cannot be loaded", library);
    return;
  }
  auto init = reinterpret_cast<InitFn>(Symbol("nvmlInit_v2"));
  for (const char* name :
       {"nvmlInit_v2", "nvmlShutdown", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
        "nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetUUID", "nvmlDeviceGetName"}) {
    if (Symbol(name) == nullptr) {
      problem_ =
          fmt::format("{}: not an NVML library (nvmlInit_v2 or another call is missing)", library);
      return;
    }
  }
  if (nvmlReturn_t rc = init(); rc != kNvmlSuccess) {
    // E.g. the library is there but no driver is loaded
    // (NVML_ERROR_DRIVER_NOT_LOADED).
    problem_ = fmt::format("{}: nvmlInit failed: {}", library, Describe(rc));
    return;
  }
  initialised_ = true;
}

NvmlSession::~NvmlSession() {
  if (initialised_) reinterpret_cast<ShutdownFn>(Symbol("nvmlShutdown"))();
  if (handle_ != nullptr) dlclose(handle_);
}

void* NvmlSession::Symbol(const char* name) const {
  return handle_ != nullptr ? dlsym(handle_, name) : nullptr;
}

std::string NvmlSession::Describe(int rc) const {
  if (rc == kNvmlFunctionMissing) return "not in this driver";
  auto error_fn = reinterpret_cast<ErrorStringFn>(Symbol("nvmlErrorString"));
  const char* text = error_fn != nullptr ? error_fn(rc) : nullptr;
  return text != nullptr ? fmt::format("{} ({})", text, rc) : fmt::format("error {}", rc);
}

int NvmlSession::DeviceCount(unsigned* count) const {
  return reinterpret_cast<CountFn>(Symbol("nvmlDeviceGetCount_v2"))(count);
}

int NvmlSession::DeviceHandle(unsigned index, Device* device) const {
  return reinterpret_cast<HandleFn>(Symbol("nvmlDeviceGetHandleByIndex_v2"))(index, device);
}

int NvmlSession::PciBusId(Device device, std::string* bus_id) const {
  nvmlPciInfo_t pci;
  std::memset(&pci, 0, sizeof(pci));
  nvmlReturn_t rc = reinterpret_cast<PciFn>(Symbol("nvmlDeviceGetPciInfo_v3"))(device, &pci);
  if (rc != kNvmlSuccess) return rc;
  pci.busId[sizeof(pci.busId) - 1] = '\0';
  *bus_id = pci.busId;
  return rc;
}

namespace {
int GetString(void* fn, NvmlSession::Device device, std::string* out) {
  char buffer[kNvmlStringBuffer] = {};
  nvmlReturn_t rc = reinterpret_cast<StringFn>(fn)(device, buffer, sizeof(buffer) - 1);
  if (rc == kNvmlSuccess) *out = buffer;
  return rc;
}
}  // namespace

int NvmlSession::Uuid(Device device, std::string* uuid) const {
  return GetString(Symbol("nvmlDeviceGetUUID"), device, uuid);
}

int NvmlSession::Name(Device device, std::string* name) const {
  return GetString(Symbol("nvmlDeviceGetName"), device, name);
}

int NvmlSession::EccMode(Device device, bool* current, bool* pending) const {
  auto fn = reinterpret_cast<EccModeFn>(Symbol("nvmlDeviceGetEccMode"));
  if (fn == nullptr) return kNvmlFunctionMissing;
  int now = 0, next = 0;
  nvmlReturn_t rc = fn(device, &now, &next);
  if (rc == kNvmlSuccess) {
    *current = now != 0;
    *pending = next != 0;
  }
  return rc;
}

int NvmlSession::UncorrectedEccErrors(Device device, bool aggregate, uint64_t* count) const {
  auto fn = reinterpret_cast<EccCountFn>(Symbol("nvmlDeviceGetTotalEccErrors"));
  if (fn == nullptr) return kNvmlFunctionMissing;
  unsigned long long value = 0;
  nvmlReturn_t rc = fn(device, kNvmlMemoryErrorUncorrected,
                       aggregate ? kNvmlAggregateEcc : kNvmlVolatileEcc, &value);
  if (rc == kNvmlSuccess) *count = value;
  return rc;
}

int NvmlSession::RetiredPagesPending(Device device, bool* pending) const {
  auto fn = reinterpret_cast<EnableStateFn>(Symbol("nvmlDeviceGetRetiredPagesPendingStatus"));
  if (fn == nullptr) return kNvmlFunctionMissing;
  int state = 0;
  nvmlReturn_t rc = fn(device, &state);
  if (rc == kNvmlSuccess) *pending = state != 0;
  return rc;
}

int NvmlSession::RemappedRows(Device device, unsigned* corrected, unsigned* uncorrected,
                              bool* pending, bool* failed) const {
  auto fn = reinterpret_cast<RemappedRowsFn>(Symbol("nvmlDeviceGetRemappedRows"));
  if (fn == nullptr) return kNvmlFunctionMissing;
  unsigned c = 0, u = 0, p = 0, f = 0;
  nvmlReturn_t rc = fn(device, &c, &u, &p, &f);
  if (rc == kNvmlSuccess) {
    *corrected = c;
    *uncorrected = u;
    *pending = p != 0;
    *failed = f != 0;
  }
  return rc;
}

namespace {
int GetUint(void* fn, NvmlSession::Device device, unsigned* out) {
  if (fn == nullptr) return kNvmlFunctionMissing;
  unsigned value = 0;
  nvmlReturn_t rc = reinterpret_cast<UintFn>(fn)(device, &value);
  if (rc == kNvmlSuccess) *out = value;
  return rc;
}
}  // namespace

int NvmlSession::PcieLinkGeneration(Device device, bool max, unsigned* generation) const {
  return GetUint(
      Symbol(max ? "nvmlDeviceGetMaxPcieLinkGeneration" : "nvmlDeviceGetCurrPcieLinkGeneration"),
      device, generation);
}

int NvmlSession::PcieLinkWidth(Device device, bool max, unsigned* width) const {
  return GetUint(Symbol(max ? "nvmlDeviceGetMaxPcieLinkWidth" : "nvmlDeviceGetCurrPcieLinkWidth"),
                 device, width);
}

int NvmlSession::PerformanceState(Device device, unsigned* pstate) const {
  auto fn = reinterpret_cast<PstateFn>(Symbol("nvmlDeviceGetPerformanceState"));
  if (fn == nullptr) return kNvmlFunctionMissing;
  int state = 0;
  nvmlReturn_t rc = fn(device, &state);
  if (rc == kNvmlSuccess) *pstate = static_cast<unsigned>(state);
  return rc;
}

int NvmlSession::NvLinkState(Device device, unsigned link, bool* active) const {
  auto fn = reinterpret_cast<NvLinkStateFn>(Symbol("nvmlDeviceGetNvLinkState"));
  if (fn == nullptr) return kNvmlFunctionMissing;
  int state = 0;
  nvmlReturn_t rc = fn(device, link, &state);
  if (rc == kNvmlSuccess) *active = state != 0;
  return rc;
}

int NvmlSession::ClocksEventReasons(Device device, uint64_t* reasons) const {
  // Renamed in CUDA 12.2's NVML; the older name stays exported (deprecated).
  auto fn = reinterpret_cast<ReasonsFn>(Symbol("nvmlDeviceGetCurrentClocksEventReasons"));
  if (fn == nullptr) {
    fn = reinterpret_cast<ReasonsFn>(Symbol("nvmlDeviceGetCurrentClocksThrottleReasons"));
  }
  if (fn == nullptr) return kNvmlFunctionMissing;
  unsigned long long value = 0;
  nvmlReturn_t rc = fn(device, &value);
  if (rc == kNvmlSuccess) *reasons = value;
  return rc;
}

int NvmlSession::WaitForXids(const std::vector<Device>& devices, int wait_ms,
                             std::vector<int>* register_rc, std::vector<NvmlXid>* xids) const {
  register_rc->assign(devices.size(), kNvmlFunctionMissing);
  auto create = reinterpret_cast<EventSetCreateFn>(Symbol("nvmlEventSetCreate"));
  auto free_set = reinterpret_cast<EventSetFreeFn>(Symbol("nvmlEventSetFree"));
  auto register_events = reinterpret_cast<RegisterEventsFn>(Symbol("nvmlDeviceRegisterEvents"));
  auto wait = reinterpret_cast<EventSetWaitFn>(Symbol("nvmlEventSetWait_v2"));
  if (wait == nullptr) wait = reinterpret_cast<EventSetWaitFn>(Symbol("nvmlEventSetWait"));
  if (create == nullptr || free_set == nullptr || register_events == nullptr || wait == nullptr) {
    return kNvmlFunctionMissing;
  }
  nvmlEventSet_t set = nullptr;
  if (nvmlReturn_t rc = create(&set); rc != kNvmlSuccess) return rc;
  bool listening = false;
  for (size_t i = 0; i < devices.size(); ++i) {
    (*register_rc)[i] = register_events(devices[i], kNvmlEventTypeXidCriticalError, set);
    listening |= (*register_rc)[i] == kNvmlSuccess;
  }
  // Wait in slices until the deadline: each event ends a wait early, and NVML
  // delivers one event per call.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (listening) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    nvmlEventData_t data;
    std::memset(&data, 0, sizeof(data));
    nvmlReturn_t rc = wait(set, &data, static_cast<unsigned>(left));
    if (rc == kNvmlErrorTimeout) break;
    if (rc != kNvmlSuccess) {
      // E.g. NVML_ERROR_GPU_IS_LOST: no more events; the per-GPU checks say the rest.
      break;
    }
    if ((data.eventType & kNvmlEventTypeXidCriticalError) == 0) continue;
    for (size_t i = 0; i < devices.size(); ++i) {
      if (devices[i] == data.device) xids->push_back({i, data.eventData});
    }
  }
  free_set(set);
  return kNvmlSuccess;
}

NvmlReport QueryNvml(const std::string& library) {
  NvmlReport report;
  report.library = library;
  NvmlSession nvml(library);
  if (!nvml.ok()) {
    report.problem = nvml.problem();
    return report;
  }
  report.available = true;
  unsigned int count = 0;
  if (int rc = nvml.DeviceCount(&count); rc != kNvmlSuccess) {
    report.problem = fmt::format("nvmlDeviceGetCount failed: {}", nvml.Describe(rc));
    count = 0;
  }
  for (unsigned int i = 0; i < count; ++i) {
    NvmlSession::Device device = nullptr;
    if (int rc = nvml.DeviceHandle(i, &device); rc != kNvmlSuccess) {
      report.problem = fmt::format("NVML GPU {}: {}", i, nvml.Describe(rc));
      continue;
    }
    std::string bus_id;
    if (int rc = nvml.PciBusId(device, &bus_id); rc != kNvmlSuccess) {
      report.problem = fmt::format("NVML GPU {}: no PCI bus id: {}", i, nvml.Describe(rc));
      continue;
    }
    NvmlGpu gpu;
    gpu.index = static_cast<int>(i);
    gpu.bus_id = NormalizeBusId(bus_id);
    if (gpu.bus_id.empty()) {
      report.problem = fmt::format("NVML GPU {}: bus id \"{}\" is not a PCI address", i, bus_id);
      continue;
    }
    nvml.Uuid(device, &gpu.uuid);
    nvml.Name(device, &gpu.name);
    report.gpus.push_back(std::move(gpu));
  }
  return report;
}

}  // namespace trainrun::gpu
