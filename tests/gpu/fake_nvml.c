/* A stand-in for libnvidia-ml.so.1, loaded by the tests through trainrun's real
 * dlopen path. It exports only the NVML calls trainrun uses.
 *
 * $FAKE_NVML_DEVICES names a file with one GPU per line, in NVML index order:
 *     <bus id as NVML writes it, e.g. 00000000:34:00.0> <UUID> <name...>
 * $FAKE_NVML_INIT_ERROR, when set, is the code nvmlInit_v2 returns (9 is
 * NVML_ERROR_DRIVER_NOT_LOADED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct nvmlDevice_st {
  char bus_id[32];
  char uuid[96];
  char name[96];
};
typedef struct nvmlDevice_st* nvmlDevice_t;

static struct nvmlDevice_st devices[MAX_DEVICES];
static unsigned int device_count;
static int initialised;

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
      ++device_count;
    }
    fclose(file);
  }
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
    case 9: return "Driver Not Loaded";
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
