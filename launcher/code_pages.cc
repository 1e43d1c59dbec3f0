#include "launcher/code_pages.h"

#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string_view>

namespace trainrun {

namespace {

// Whether the loader wrote into the object's read-only segments (text relocations).
bool HasTextRelocations(const struct dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    if (phdr.p_type != PT_DYNAMIC) continue;
    for (auto* dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + phdr.p_vaddr);
         dyn->d_tag != DT_NULL; ++dyn) {
      if (dyn->d_tag == DT_TEXTREL) return true;
      if (dyn->d_tag == DT_FLAGS && (dyn->d_un.d_val & DF_TEXTREL) != 0) return true;
    }
  }
  return false;
}

int ReleaseObject(struct dl_phdr_info* info, size_t, void*) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  // The vDSO is the kernel's, not a file's; an object with text relocations has
  // private copies of its code.
  const std::string_view name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (name.find("linux-vdso") != std::string_view::npos || HasTextRelocations(info)) return 0;
  // RELRO is written by the loader (relocations) before it is made read-only: those
  // pages are private copies, which MADV_DONTNEED would throw away.
  uintptr_t relro_begin = 0, relro_end = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    if (phdr.p_type == PT_GNU_RELRO) {
      relro_begin = (info->dlpi_addr + phdr.p_vaddr) & ~(page - 1);
      relro_end = (info->dlpi_addr + phdr.p_vaddr + phdr.p_memsz + page - 1) & ~(page - 1);
    }
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    if (phdr.p_type != PT_LOAD || (phdr.p_flags & PF_W) != 0) continue;
    // Whole pages inside the segment's file-backed part only.
    uintptr_t begin = (info->dlpi_addr + phdr.p_vaddr + page - 1) & ~(page - 1);
    uintptr_t end = (info->dlpi_addr + phdr.p_vaddr + phdr.p_filesz) & ~(page - 1);
    if (begin < relro_end && end > relro_begin) continue;  // never inside RELRO
    if (begin < end) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
  return 0;
}

}  // namespace

void ReleaseCodePages() { dl_iterate_phdr(ReleaseObject, nullptr); }

}  // namespace trainrun
