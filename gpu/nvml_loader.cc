#include "gpu/nvml_loader.h"

#include <dlfcn.h>

#include <cctype>
#include <cstring>

#include <fmt/format.h>

namespace trainrun::gpu {
namespace {

// The few NVML types and calls trainrun uses, declared from NVML's documented,
// stable C ABI so no NVIDIA header is needed to build.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr unsigned kNvmlStringBuffer = 96;  // >= the UUID (80) and name (96) buffer sizes

struct nvmlPciInfo_t {  // nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v3
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
};

using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using CountFn = nvmlReturn_t (*)(unsigned int*);
using HandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using PciFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlPciInfo_t*);
using StringFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);
using ErrorStringFn = const char* (*)(nvmlReturn_t);

class Library {
 public:
  explicit Library(const std::string& path)
      : handle_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {}
  ~Library() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  bool loaded() const { return handle_ != nullptr; }
  template <typename Fn>
  Fn Symbol(const char* name) const {
    return reinterpret_cast<Fn>(dlsym(handle_, name));
  }

 private:
  void* handle_;
};

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

NvmlReport QueryNvml(const std::string& library) {
  NvmlReport report;
  report.library = library;
  dlerror();
  Library lib(library);
  if (!lib.loaded()) {
    const char* error = dlerror();
    report.problem = error != nullptr ? error : fmt::format("{}: cannot be loaded", library);
    return report;
  }
  auto init = lib.Symbol<InitFn>("nvmlInit_v2");
  auto shutdown = lib.Symbol<ShutdownFn>("nvmlShutdown");
  auto count_fn = lib.Symbol<CountFn>("nvmlDeviceGetCount_v2");
  auto handle_fn = lib.Symbol<HandleFn>("nvmlDeviceGetHandleByIndex_v2");
  auto pci_fn = lib.Symbol<PciFn>("nvmlDeviceGetPciInfo_v3");
  auto uuid_fn = lib.Symbol<StringFn>("nvmlDeviceGetUUID");
  auto name_fn = lib.Symbol<StringFn>("nvmlDeviceGetName");
  auto error_fn = lib.Symbol<ErrorStringFn>("nvmlErrorString");
  if (!init || !shutdown || !count_fn || !handle_fn || !pci_fn || !uuid_fn || !name_fn) {
    report.problem =
        fmt::format("{}: not an NVML library (nvmlInit_v2 or another call is missing)", library);
    return report;
  }
  auto describe = [&](nvmlReturn_t rc) -> std::string {
    const char* text = error_fn != nullptr ? error_fn(rc) : nullptr;
    return text != nullptr ? fmt::format("{} ({})", text, rc) : fmt::format("error {}", rc);
  };
  if (nvmlReturn_t rc = init(); rc != kNvmlSuccess) {
    // E.g. the library is there but no driver is loaded
    // (NVML_ERROR_DRIVER_NOT_LOADED).
    report.problem = fmt::format("{}: nvmlInit failed: {}", library, describe(rc));
    return report;
  }
  report.available = true;
  unsigned int count = 0;
  if (nvmlReturn_t rc = count_fn(&count); rc != kNvmlSuccess) {
    report.problem = fmt::format("nvmlDeviceGetCount failed: {}", describe(rc));
    count = 0;
  }
  for (unsigned int i = 0; i < count; ++i) {
    nvmlDevice_t device = nullptr;
    nvmlPciInfo_t pci;
    std::memset(&pci, 0, sizeof(pci));
    char uuid[kNvmlStringBuffer] = {};
    char name[kNvmlStringBuffer] = {};
    if (nvmlReturn_t rc = handle_fn(i, &device); rc != kNvmlSuccess) {
      report.problem = fmt::format("NVML GPU {}: {}", i, describe(rc));
      continue;
    }
    if (nvmlReturn_t rc = pci_fn(device, &pci); rc != kNvmlSuccess) {
      report.problem = fmt::format("NVML GPU {}: no PCI bus id: {}", i, describe(rc));
      continue;
    }
    pci.busId[sizeof(pci.busId) - 1] = '\0';
    NvmlGpu gpu;
    gpu.index = static_cast<int>(i);
    gpu.bus_id = NormalizeBusId(pci.busId);
    if (gpu.bus_id.empty()) {
      report.problem = fmt::format("NVML GPU {}: bus id \"{}\" is not a PCI address", i, pci.busId);
      continue;
    }
    if (uuid_fn(device, uuid, sizeof(uuid) - 1) == kNvmlSuccess) gpu.uuid = uuid;
    if (name_fn(device, name, sizeof(name) - 1) == kNvmlSuccess) gpu.name = name;
    report.gpus.push_back(std::move(gpu));
  }
  shutdown();
  return report;
}

}  // namespace trainrun::gpu
