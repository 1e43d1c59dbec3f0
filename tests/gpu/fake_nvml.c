/* A stand-in for libnvidia-ml.so.1, loaded by the tests through trainrun's real
 * dlopen path. It exports only the NVML calls trainrun uses.
 *
 * $FAKE_NVML_DEVICES names a file with one GPU per line, in NVML index order:
 *     <bus id as NVML writes it, e.g. 00000000:34:00.0> <UUID> <name...>
 * $FAKE_NVML_INIT_ERROR, when set, is the code nvmlInit_v2 returns (9 is
 * NVML_ERROR_DRIVER_NOT_LOADED).
 *
 * Health (gpu/gpu_health.h). Every GPU starts healthy: ECC on with no errors, no
 * retired page or row remapping pending, PCIe x16 generation 4 of x16 generation 4
 * in P0, 12 NVLinks all active, no clocks event reason, no XID. $FAKE_NVML_HEALTH
 * names a file that changes that, one GPU per line (later lines add to earlier):
 *     <bus id (any spelling of the same address) or *> key=value ...
 * with the keys
 *     ecc=0|1                  ECC mode now (nvmlDeviceGetEccMode's current)
 *     ecc_pending=0|1          ECC mode after a reboot (default: as ecc)
 *     ecc_volatile=N           uncorrected ECC errors, volatile
 *     ecc_aggregate=N          uncorrected ECC errors, aggregate
 *     retired_pending=0|1      nvmlDeviceGetRetiredPagesPendingStatus
 *     remap_corrected=N remap_uncorrected=N remap_pending=0|1 remap_failure=0|1
 *                              nvmlDeviceGetRemappedRows
 *     pcie_width=N pcie_max_width=N pcie_gen=N pcie_max_gen=N
 *                              current and maximum PCIe link width and generation
 *     pstate=N                 performance state (0 busy, 8 idle)
 *     nvlinks=N                links the GPU has (0 to 18; nonexistent links answer
 *                              NVML_ERROR_INVALID_ARGUMENT)
 *     nvlink_down=L,L,...      links that are inactive
 *     clocks=MASK              clocks event reasons, e.g. 0x8 (hwSlowdown)
 *     xid=X,X,...              XIDs the event set delivers for this GPU, one per
 *                              nvmlEventSetWait_v2, to every set it is registered on
 *     unsupported=F,F,...      NVML functions that answer NVML_ERROR_NOT_SUPPORTED (3)
 *                              for this GPU, e.g. nvmlDeviceGetRemappedRows
 *     lost=1                   every health call answers NVML_ERROR_GPU_IS_LOST (15)
 * $FAKE_NVML_NOT_SUPPORTED is a comma-separated list of functions that answer
 * NVML_ERROR_NOT_SUPPORTED for every GPU.
 *
 * Built twice: libnvidia-ml-fake.so exports every call above;
 * libnvidia-ml-fake-old.so (FAKE_NVML_OLD_DRIVER) is an old driver without
 * nvmlDeviceGetEccMode, nvmlDeviceGetTotalEccErrors, nvmlDeviceGetRemappedRows,
 * nvmlDeviceGetNvLinkState, nvmlDeviceGetPerformanceState, the event set calls and
 * nvmlDeviceGetCurrentClocksEventReasons (it has the older
 * nvmlDeviceGetCurrentClocksThrottleReasons).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEVICES 64

typedef struct {
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
} nvmlPciInfo_t;

#define MAX_LINKS 18
#define MAX_XIDS 16

struct nvmlDevice_st {
  char bus_id[32];
  char uuid[96];
  char name[96];
  /* Health, as $FAKE_NVML_HEALTH sets it. */
  int ecc, ecc_pending;
  unsigned long long ecc_volatile, ecc_aggregate;
  int retired_pending;
  unsigned remap_corrected, remap_uncorrected, remap_pending, remap_failure;
  unsigned pcie_width, pcie_max_width, pcie_gen, pcie_max_gen;
  int pstate;
  unsigned nvlinks;
  int nvlink_down[MAX_LINKS];
  unsigned long long clocks;
  unsigned long long xids[MAX_XIDS];
  unsigned xid_count;
  char unsupported[512];
  int lost;
};
typedef struct nvmlDevice_st* nvmlDevice_t;

static struct nvmlDevice_st devices[MAX_DEVICES];
static unsigned int device_count;
static int initialised;

static void set_healthy(struct nvmlDevice_st* d) {
  d->ecc = d->ecc_pending = 1;
  d->ecc_volatile = d->ecc_aggregate = 0;
  d->retired_pending = 0;
  d->remap_corrected = d->remap_uncorrected = d->remap_pending = d->remap_failure = 0;
  d->pcie_width = d->pcie_max_width = 16;
  d->pcie_gen = d->pcie_max_gen = 4;
  d->pstate = 0;
  d->nvlinks = 12;
  memset(d->nvlink_down, 0, sizeof(d->nvlink_down));
  d->clocks = 0;
  d->xid_count = 0;
  d->unsupported[0] = '\0';
  d->lost = 0;
}

/* The same PCI address however it is spelt (domain width, case). */
static int same_bus_id(const char* a, const char* b) {
  unsigned x[4] = {0}, y[4] = {0};
  if (sscanf(a, "%x:%x:%x.%x", &x[0], &x[1], &x[2], &x[3]) != 4) return 0;
  if (sscanf(b, "%x:%x:%x.%x", &y[0], &y[1], &y[2], &y[3]) != 4) return 0;
  return memcmp(x, y, sizeof(x)) == 0;
}

static void apply(struct nvmlDevice_st* d, const char* key, const char* value) {
  unsigned long long n = strtoull(value, NULL, 0);
  if (strcmp(key, "ecc") == 0) {
    d->ecc = d->ecc_pending = (int)n;
  } else if (strcmp(key, "ecc_pending") == 0) {
    d->ecc_pending = (int)n;
  } else if (strcmp(key, "ecc_volatile") == 0) {
    d->ecc_volatile = n;
  } else if (strcmp(key, "ecc_aggregate") == 0) {
    d->ecc_aggregate = n;
  } else if (strcmp(key, "retired_pending") == 0) {
    d->retired_pending = (int)n;
  } else if (strcmp(key, "remap_corrected") == 0) {
    d->remap_corrected = (unsigned)n;
  } else if (strcmp(key, "remap_uncorrected") == 0) {
    d->remap_uncorrected = (unsigned)n;
  } else if (strcmp(key, "remap_pending") == 0) {
    d->remap_pending = (unsigned)n;
  } else if (strcmp(key, "remap_failure") == 0) {
    d->remap_failure = (unsigned)n;
  } else if (strcmp(key, "pcie_width") == 0) {
    d->pcie_width = (unsigned)n;
  } else if (strcmp(key, "pcie_max_width") == 0) {
    d->pcie_max_width = (unsigned)n;
  } else if (strcmp(key, "pcie_gen") == 0) {
    d->pcie_gen = (unsigned)n;
  } else if (strcmp(key, "pcie_max_gen") == 0) {
    d->pcie_max_gen = (unsigned)n;
  } else if (strcmp(key, "pstate") == 0) {
    d->pstate = (int)n;
  } else if (strcmp(key, "nvlinks") == 0) {
    d->nvlinks = n > MAX_LINKS ? MAX_LINKS : (unsigned)n;
  } else if (strcmp(key, "nvlink_down") == 0 || strcmp(key, "xid") == 0) {
    const char* p = value;
    while (*p != '\0') {
      char* end = NULL;
      unsigned long long item = strtoull(p, &end, 0);
      if (end == p) break;
      if (key[0] == 'n' && item < MAX_LINKS) d->nvlink_down[item] = 1;
      if (key[0] == 'x' && d->xid_count < MAX_XIDS) d->xids[d->xid_count++] = item;
      p = *end == ',' ? end + 1 : end;
    }
  } else if (strcmp(key, "clocks") == 0) {
    d->clocks = n;
  } else if (strcmp(key, "unsupported") == 0) {
    snprintf(d->unsupported, sizeof(d->unsupported), "%s", value);
  } else if (strcmp(key, "lost") == 0) {
    d->lost = (int)n;
  }
}

static void read_health(void) {
  const char* path = getenv("FAKE_NVML_HEALTH");
  FILE* file = path != NULL && *path != '\0' ? fopen(path, "r") : NULL;
  if (file == NULL) return;
  char line[1024];
  while (fgets(line, sizeof(line), file) != NULL) {
    char* save = NULL;
    char* target = strtok_r(line, " \t\n", &save);
    if (target == NULL || target[0] == '#') continue;
    for (char* pair = strtok_r(NULL, " \t\n", &save); pair != NULL;
         pair = strtok_r(NULL, " \t\n", &save)) {
      char* equals = strchr(pair, '=');
      if (equals == NULL) continue;
      *equals = '\0';
      for (unsigned i = 0; i < device_count; ++i) {
        if (strcmp(target, "*") == 0 || same_bus_id(target, devices[i].bus_id)) {
          apply(&devices[i], pair, equals + 1);
        }
      }
    }
  }
  fclose(file);
}

/* Whether `function` is in the comma-separated `list`. */
static int listed(const char* list, const char* function) {
  size_t n = strlen(function);
  const char* p = list;
  while (p != NULL && *p != '\0') {
    if (strncmp(p, function, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
    p = strchr(p, ',');
    if (p != NULL) ++p;
  }
  return 0;
}

/* The code a health call answers before touching the device: 1 uninitialised, 15
 * lost, 3 not supported; 0 to go on. */
static int health_call(nvmlDevice_t device, const char* function) {
  if (!initialised) return 1;
  if (device->lost) return 15; /* NVML_ERROR_GPU_IS_LOST */
  if (listed(device->unsupported, function) || listed(getenv("FAKE_NVML_NOT_SUPPORTED"), function))
    return 3; /* NVML_ERROR_NOT_SUPPORTED */
  return 0;
}

int nvmlInit_v2(void) {
  const char* error = getenv("FAKE_NVML_INIT_ERROR");
  if (error != NULL && *error != '\0') return atoi(error);
  device_count = 0;
  const char* path = getenv("FAKE_NVML_DEVICES");
  FILE* file = path != NULL ? fopen(path, "r") : NULL;
  if (file != NULL) {
    char line[256];
    while (device_count < MAX_DEVICES && fgets(line, sizeof(line), file) != NULL) {
      struct nvmlDevice_st* d = &devices[device_count];
      int consumed = 0;
      if (sscanf(line, "%31s %95s %n", d->bus_id, d->uuid, &consumed) < 2) continue;
      snprintf(d->name, sizeof(d->name), "%s", line + consumed);
      d->name[strcspn(d->name, "\n")] = '\0';
      set_healthy(d);
      ++device_count;
    }
    fclose(file);
  }
  read_health();
  initialised = 1;
  return 0;
}

int nvmlShutdown(void) {
  if (!initialised) return 1; /* NVML_ERROR_UNINITIALIZED */
  initialised = 0;
  return 0;
}

const char* nvmlErrorString(int result) {
  switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
  }
}

int nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!initialised) return 1;
  *count = device_count;
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (!initialised) return 1;
  if (index >= device_count) return 2;
  *device = &devices[index];
  return 0;
}

int nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t* pci) {
  if (!initialised) return 1;
  memset(pci, 0, sizeof(*pci));
  snprintf(pci->busId, sizeof(pci->busId), "%s", device->bus_id);
  unsigned int domain = 0, bus = 0, dev = 0;
  sscanf(device->bus_id, "%x:%x:%x", &domain, &bus, &dev);
  pci->domain = domain;
  pci->bus = bus;
  pci->device = dev;
  return 0;
}

int nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  if (!initialised) return 1;
  if (strlen(device->uuid) + 1 > length) return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
  strcpy(uuid, device->uuid);
  return 0;
}

int nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  if (!initialised) return 1;
  if (strlen(device->name) + 1 > length) return 7;
  strcpy(name, device->name);
  return 0;
}

/* Health. */

int nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, int* pending) {
  int rc = health_call(device, "nvmlDeviceGetRetiredPagesPendingStatus");
  if (rc == 0) *pending = device->retired_pending;
  return rc;
}

int nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int* width) {
  int rc = health_call(device, "nvmlDeviceGetCurrPcieLinkWidth");
  if (rc == 0) *width = device->pcie_width;
  return rc;
}

int nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int* width) {
  int rc = health_call(device, "nvmlDeviceGetMaxPcieLinkWidth");
  if (rc == 0) *width = device->pcie_max_width;
  return rc;
}

int nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int* generation) {
  int rc = health_call(device, "nvmlDeviceGetCurrPcieLinkGeneration");
  if (rc == 0) *generation = device->pcie_gen;
  return rc;
}

int nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int* generation) {
  int rc = health_call(device, "nvmlDeviceGetMaxPcieLinkGeneration");
  if (rc == 0) *generation = device->pcie_max_gen;
  return rc;
}

int nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long* reasons) {
  int rc = health_call(device, "nvmlDeviceGetCurrentClocksThrottleReasons");
  if (rc == 0) *reasons = device->clocks;
  return rc;
}

#ifndef FAKE_NVML_OLD_DRIVER

int nvmlDeviceGetEccMode(nvmlDevice_t device, int* current, int* pending) {
  int rc = health_call(device, "nvmlDeviceGetEccMode");
  if (rc != 0) return rc;
  *current = device->ecc;
  *pending = device->ecc_pending;
  return 0;
}

int nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int error_type, int counter_type,
                                unsigned long long* count) {
  int rc = health_call(device, "nvmlDeviceGetTotalEccErrors");
  if (rc != 0) return rc;
  if (!device->ecc) return 3;
  if (error_type != 1) { /* only NVML_MEMORY_ERROR_TYPE_UNCORRECTED is faked */
    *count = 0;
    return 0;
  }
  *count = counter_type == 0 ? device->ecc_volatile : device->ecc_aggregate;
  return 0;
}

int nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int* corrected,
                              unsigned int* uncorrected, unsigned int* pending,
                              unsigned int* failure) {
  int rc = health_call(device, "nvmlDeviceGetRemappedRows");
  if (rc != 0) return rc;
  *corrected = device->remap_corrected;
  *uncorrected = device->remap_uncorrected;
  *pending = device->remap_pending;
  *failure = device->remap_failure;
  return 0;
}

int nvmlDeviceGetPerformanceState(nvmlDevice_t device, int* pstate) {
  int rc = health_call(device, "nvmlDeviceGetPerformanceState");
  if (rc == 0) *pstate = device->pstate;
  return rc;
}

int nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, int* active) {
  int rc = health_call(device, "nvmlDeviceGetNvLinkState");
  if (rc != 0) return rc;
  if (link >= device->nvlinks) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
  *active = !device->nvlink_down[link];
  return 0;
}

int nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long* reasons) {
  int rc = health_call(device, "nvmlDeviceGetCurrentClocksEventReasons");
  if (rc == 0) *reasons = device->clocks;
  return rc;
}

/* Events: a set holds its registered devices and how many of each device's XIDs it
 * has delivered. */
typedef struct {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlEventData_t;

struct nvmlEventSet_st {
  int registered[MAX_DEVICES];
  unsigned delivered[MAX_DEVICES];
};
typedef struct nvmlEventSet_st* nvmlEventSet_t;

int nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (!initialised) return 1;
  if (listed(getenv("FAKE_NVML_NOT_SUPPORTED"), "nvmlEventSetCreate")) return 3;
  *set = calloc(1, sizeof(struct nvmlEventSet_st));
  return *set != NULL ? 0 : 20; /* NVML_ERROR_MEMORY */
}

int nvmlEventSetFree(nvmlEventSet_t set) {
  free(set);
  return 0;
}

int nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
  int rc = health_call(device, "nvmlDeviceRegisterEvents");
  if (rc != 0) return rc;
  if (types & 0x8) set->registered[device - devices] = 1; /* nvmlEventTypeXidCriticalError */
  return 0;
}

int nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data, unsigned int timeout_ms) {
  if (!initialised) return 1;
  for (unsigned i = 0; i < device_count; ++i) {
    if (!set->registered[i] || set->delivered[i] >= devices[i].xid_count) continue;
    memset(data, 0, sizeof(*data));
    data->device = &devices[i];
    data->eventType = 0x8;
    data->eventData = devices[i].xids[set->delivered[i]++];
    return 0;
  }
  usleep(timeout_ms * 1000u);
  return 10; /* NVML_ERROR_TIMEOUT */
}

#endif /* FAKE_NVML_OLD_DRIVER */
