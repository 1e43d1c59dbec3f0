// NVML, loaded at run time with dlopen, for each GPU's index, PCI bus id, UUID
// and name. trainrun has no build or link dependency on the NVIDIA driver: on a
// machine without it (or in a container without the driver's libraries) the
// library is simply absent and discovery falls back to hwloc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trainrun::gpu {

// The driver's library, as the NVIDIA container toolkit mounts it.
constexpr const char* kDefaultNvmlLibrary = "libnvidia-ml.so.1";

struct NvmlGpu {
  int index = 0;       // NVML's index (the order nvidia-smi shows)
  std::string bus_id;  // normalised like hwloc's: "0000:34:00.0", lower-case
  std::string uuid;    // "GPU-..."
  std::string name;    // "Tesla V100-SXM3-32GB-H"
};

struct NvmlReport {
  bool available = false;  // the library loaded and nvmlInit succeeded
  std::string library;     // what was dlopen'ed
  // Why NVML was not used ("libnvidia-ml.so.1: cannot open shared object
  // file"), or a problem with one device; never fatal.
  std::string problem;
  std::vector<NvmlGpu> gpus;  // in NVML's index order
};

// Loads `library` (a file name searched like dlopen does, or a path),
// initialises NVML, lists the GPUs and shuts NVML down and unloads the library
// again. Never fails: what went wrong is in `problem`. Not thread-safe against
// other NVML users in the process (trainrun has none).
NvmlReport QueryNvml(const std::string& library = kDefaultNvmlLibrary);

// NVML's return codes trainrun tells apart (nvml.h's nvmlReturn_t), and one of its
// own for a call the loaded driver does not export.
inline constexpr int kNvmlSuccess = 0;
inline constexpr int kNvmlErrorInvalidArgument = 2;
inline constexpr int kNvmlErrorNotSupported = 3;
inline constexpr int kNvmlErrorNoPermission = 4;
inline constexpr int kNvmlErrorTimeout = 10;
inline constexpr int kNvmlErrorFunctionNotFound = 13;
inline constexpr int kNvmlErrorCorruptedInforom = 14;
inline constexpr int kNvmlErrorGpuIsLost = 15;
inline constexpr int kNvmlErrorResetRequired = 16;
inline constexpr int kNvmlErrorUnknown = 999;
inline constexpr int kNvmlFunctionMissing = -1;  // dlsym found no such symbol

// nvml.h's NVML_NVLINK_MAX_LINKS (NVLink 4 and 5 GPUs have 18).
inline constexpr unsigned kNvmlMaxNvLinks = 18;

// An XID critical error NVML reported: the GPU (its position in the list given to
// WaitForXids) and the XID number.
struct NvmlXid {
  size_t device = 0;
  uint64_t xid = 0;
};

// An open NVML: the library loaded and nvmlInit_v2 done. The destructor calls
// nvmlShutdown and unloads the library. Only the discovery calls (init, count,
// handle, PCI info, UUID, name) are required; every other call is looked up once
// and, when the driver does not export it, returns kNvmlFunctionMissing. Calls
// return NVML's code (kNvmlSuccess, ...); outputs are written only on success.
// Not thread-safe; one session at a time per process (NVML is process-global).
class NvmlSession {
 public:
  using Device = struct nvmlDevice_st*;

  explicit NvmlSession(const std::string& library);
  ~NvmlSession();
  NvmlSession(const NvmlSession&) = delete;
  NvmlSession& operator=(const NvmlSession&) = delete;

  // Whether the library loaded and initialised; else problem() says why
  // ("libnvidia-ml.so.1: cannot open shared object file ...").
  bool ok() const { return initialised_; }
  const std::string& problem() const { return problem_; }
  // NVML's words for a code: "GPU is lost (15)"; "not in this driver" for
  // kNvmlFunctionMissing.
  std::string Describe(int rc) const;

  int DeviceCount(unsigned* count) const;
  int DeviceHandle(unsigned index, Device* device) const;
  // The bus id as NVML writes it ("00000000:34:00.0").
  int PciBusId(Device device, std::string* bus_id) const;
  int Uuid(Device device, std::string* uuid) const;
  int Name(Device device, std::string* name) const;

  // nvmlDeviceGetEccMode: whether ECC is on now and after the next reboot.
  int EccMode(Device device, bool* current, bool* pending) const;
  // nvmlDeviceGetTotalEccErrors for uncorrected errors, volatile or aggregate.
  int UncorrectedEccErrors(Device device, bool aggregate, uint64_t* count) const;
  // nvmlDeviceGetRetiredPagesPendingStatus.
  int RetiredPagesPending(Device device, bool* pending) const;
  // nvmlDeviceGetRemappedRows.
  int RemappedRows(Device device, unsigned* corrected, unsigned* uncorrected, bool* pending,
                   bool* failed) const;
  // nvmlDeviceGet{Curr,Max}PcieLink{Generation,Width}.
  int PcieLinkGeneration(Device device, bool max, unsigned* generation) const;
  int PcieLinkWidth(Device device, bool max, unsigned* width) const;
  // nvmlDeviceGetPerformanceState: 0 for P0 .. 15 for P15, 32 unknown.
  int PerformanceState(Device device, unsigned* pstate) const;
  // nvmlDeviceGetNvLinkState; a link the GPU does not have answers
  // kNvmlErrorInvalidArgument or kNvmlErrorNotSupported.
  int NvLinkState(Device device, unsigned link, bool* active) const;
  // nvmlDeviceGetCurrentClocksEventReasons, or the older
  // nvmlDeviceGetCurrentClocksThrottleReasons when the driver lacks it.
  int ClocksEventReasons(Device device, uint64_t* reasons) const;

  // Registers `devices` for XID critical errors on one event set and collects what
  // arrives within `wait_ms` milliseconds. register_rc[i] is the code of device i's
  // registration (devices that failed to register are not listened to); returns the
  // code of creating the set (kNvmlFunctionMissing when the driver has no events).
  int WaitForXids(const std::vector<Device>& devices, int wait_ms, std::vector<int>* register_rc,
                  std::vector<NvmlXid>* xids) const;

 private:
  void* Symbol(const char* name) const;

  void* handle_ = nullptr;
  bool initialised_ = false;
  std::string library_;
  std::string problem_;
};

// "00000000:34:00.0" (NVML) or "0000:34:00.0" (hwloc) -> "0000:34:00.0";
// returns "" when `bus_id` is not a PCI address.
std::string NormalizeBusId(const std::string& bus_id);

}  // namespace trainrun::gpu
