/* The portable trainrun runs on glibc 2.31 (cmake/portable.cmake, README "Install").
 *
 * It is compiled and linked against Debian 11's glibc 2.31 (scripts/portable-sysroot.sh),
 * but libstdc++.a and libgcc_eh.a, linked in, are gcc 12's as built on Debian 12 against
 * glibc 2.36, and take four symbols that glibc 2.31 does not have. They are defined
 * here, in the executable, and used on every glibc, old or new:
 *
 * - __libc_single_threaded (2.32): libstdc++ skips atomic reference counts (shared_ptr,
 *   std::string's old ABI, locales) while it is true. Always false here, so they are
 *   always atomic: correct in any process, at the cost of a few atomic instructions.
 * - arc4random (2.36): std::random_device's "arc4random" source. Reads getrandom(2)
 *   (Linux 3.17), and /dev/urandom where getrandom is missing; aborts when neither
 *   gives bytes, as glibc's does.
 * - _dl_find_object (2.35): the unwinder of gcc 12 finds the .eh_frame_hdr of the code
 *   a frame is in with it, on every throw. Answered with dl_iterate_phdr, as the
 *   unwinder of gcc 11 and older did: the loaded object one of whose PT_LOAD segments
 *   holds the address, and its PT_GNU_EH_FRAME.
 *
 * The fourth, stat/fstat/lstat/fstatat as real functions (2.33), needs nothing here:
 * glibc 2.31's libc_nonshared.a has them. pthread_* (in libc from 2.34) come from
 * glibc 2.31's libpthread.so.0 and dlopen from its libdl.so.2. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

char __libc_single_threaded = 0;

static int read_urandom(void* buffer, size_t size) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, (char*)buffer + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (size_t)n;
  }
  close(fd);
  return done == size ? 0 : -1;
}

uint32_t arc4random(void) {
  uint32_t value;
  size_t done = 0;
  while (done < sizeof value) {
    ssize_t n = getrandom((char*)&value + done, sizeof value - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (read_urandom(&value, sizeof value) == 0) return value;
      abort();
    }
    done += (size_t)n;
  }
  return value;
}

/* glibc 2.35's struct dl_find_object (<dlfcn.h>), which glibc 2.31's headers lack. */
struct dl_find_object {
  unsigned long long int dlfo_flags;
  void* dlfo_map_start;
  void* dlfo_map_end;
  struct link_map* dlfo_link_map;
  void* dlfo_eh_frame;
  unsigned long long int __dlfo_reserved[7];
};

struct find_request {
  uintptr_t pc;
  struct dl_find_object* result;
};

static int find_object(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  struct find_request* request = data;
  int holds = 0;
  uintptr_t start = UINTPTR_MAX, end = 0, eh_frame = 0;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)* phdr = &info->dlpi_phdr[i];
    uintptr_t begin = info->dlpi_addr + phdr->p_vaddr;
    if (phdr->p_type == PT_LOAD) {
      if (request->pc >= begin && request->pc < begin + phdr->p_memsz) holds = 1;
      if (begin < start) start = begin;
      if (begin + phdr->p_memsz > end) end = begin + phdr->p_memsz;
    } else if (phdr->p_type == PT_GNU_EH_FRAME) {
      eh_frame = begin;
    }
  }
  if (!holds) return 0;
  request->result->dlfo_flags = 0;
  request->result->dlfo_map_start = (void*)start;
  request->result->dlfo_map_end = (void*)end;
  request->result->dlfo_link_map = NULL;
  request->result->dlfo_eh_frame = (void*)eh_frame;
  return 1;
}

int _dl_find_object(void* pc, struct dl_find_object* result) {
  struct find_request request = {(uintptr_t)pc, result};
  return dl_iterate_phdr(find_object, &request) == 1 ? 0 : -1;
}
