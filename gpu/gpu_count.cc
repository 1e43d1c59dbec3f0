#include "gpu/gpu_count.h"

#include <filesystem>
#include <fstream>

namespace trainrun::gpu {

int CountNvidiaGpus(const std::string& pci_root) {
  int count = 0;
  std::error_code ec;
  for (const auto& device : std::filesystem::directory_iterator(pci_root, ec)) {
    std::ifstream vendor_file(device.path() / "vendor");
    std::ifstream class_file(device.path() / "class");
    std::string vendor, pci_class;
    if (!(vendor_file >> vendor) || !(class_file >> pci_class)) continue;
    // class 0x0300xx: VGA controller, 0x0302xx: 3D controller.
    if (vendor == "0x10de" &&
        (pci_class.rfind("0x0300", 0) == 0 || pci_class.rfind("0x0302", 0) == 0)) {
      ++count;
    }
  }
  return count;
}

}  // namespace trainrun::gpu
