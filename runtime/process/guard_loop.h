// The process guard's whole work (see Isolation in process_posix.h), written once for
// the two ways it runs: as its own small image (guard_image.cc, started from a memfd:
// no C library, nothing of trainrun's), and, where the kernel refuses to execute a
// memfd, as a clone of trainrun that shares its memory. In both it makes its system
// calls itself and calls no library function: the clone runs on the thread-local
// storage of the thread that started it, where glibc's wrappers keep errno.
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

// glibc 2.31's <sys/syscall.h> (the portable build's, cmake/portable.cmake) predates
// close_range; Linux's own header has its number.
#ifndef SYS_close_range
#define SYS_close_range __NR_close_range
#endif

namespace trainrun::guard {

// The guard's socket, in its own image.
constexpr long kSocketFd = 3;
constexpr int kMaxGroups = 1 << 16;

// The groups it kills: in the image's zeroed data, or the clone's own mapping.
struct Table {
  int count;
  int32_t groups[kMaxGroups];
};

#if defined(__has_attribute) && __has_attribute(no_stack_protector)
#define TRAINRUN_GUARD_CODE \
  __attribute__((no_stack_protector, noinline, no_sanitize("address", "undefined")))
#else
#define TRAINRUN_GUARD_CODE __attribute__((noinline, no_sanitize("address", "undefined")))
#endif

#if defined(__x86_64__)
TRAINRUN_GUARD_CODE inline long Syscall(long number, long a = 0, long b = 0, long c = 0,
                                        long d = 0) {
  long result;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return result;
}
#elif defined(__aarch64__)
TRAINRUN_GUARD_CODE inline long Syscall(long number, long a = 0, long b = 0, long c = 0,
                                        long d = 0) {
  register long x8 __asm__("x8") = number;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
#else
#error "the process guard makes its own system calls: x86_64 and aarch64 only"
#endif

// The kernel's struct sigaction (rt_sigaction), which glibc's is not.
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  unsigned long mask;
};

// Watches `fd`: a positive int32 is a process group to kill when trainrun ends, a
// negative one a group to forget; end of file (trainrun gone, however it ended) kills
// every group it holds and ends the guard.
[[noreturn]] TRAINRUN_GUARD_CODE inline void Run(long fd, bool pid_namespace, Table* table) {
  // As the namespace's init it must go the moment trainrun goes: the kernel then
  // kills everything in the namespace. As a process-group guard it must outlive
  // trainrun to do its work, so it only watches the socket.
  if (pid_namespace) Syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  Syscall(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>("trainrun-guard"));
  Syscall(SYS_setpgid, 0, 0);  // out of trainrun's group: a Ctrl-C is not for it
  // Every signal blocked (SIGKILL and SIGSTOP aside): SIGTERM, SIGINT or SIGHUP do
  // nothing, and no handler of trainrun's runs in the clone. Children (orphans, as
  // the namespace's init) are reaped by the kernel.
  unsigned long all_signals = ~0UL;
  Syscall(SYS_rt_sigprocmask, SIG_BLOCK, reinterpret_cast<long>(&all_signals), 0,
          sizeof(all_signals));
  KernelSigaction ignore;
  ignore.handler = SIG_IGN;
  ignore.flags = 0;
  ignore.restorer = nullptr;
  ignore.mask = 0;
  Syscall(SYS_rt_sigaction, SIGCHLD, reinterpret_cast<long>(&ignore), 0, sizeof(ignore.mask));
  // Hold nothing else of trainrun's: not its stdio (whoever reads trainrun's output
  // would wait for the guard too), not its sockets, not the write end of this socket.
  long closed = fd > 0 ? Syscall(SYS_close_range, 0, fd - 1, 0) : 0;
  if (closed == 0) closed = Syscall(SYS_close_range, fd + 1, ~0U, 0);
  if (closed != 0) {                              // a kernel older than 5.9
    unsigned long limit[2] = {1 << 20, 1 << 20};  // RLIMIT_NOFILE's current and maximum
    Syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, reinterpret_cast<long>(limit));
    for (long other = 0; other < static_cast<long>(limit[0]) && other < (1 << 20); ++other) {
      if (other != fd) Syscall(SYS_close, other);
    }
  }
  while (true) {
    int32_t message = 0;
    const long n = Syscall(SYS_read, fd, reinterpret_cast<long>(&message), sizeof(message));
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n <= 0) {  // trainrun is gone, however it ended
      for (int i = 0; i < table->count; ++i) Syscall(SYS_kill, -table->groups[i], SIGKILL);
      Syscall(SYS_exit_group, 0);
    }
    if (n != sizeof(message) || message == 0) continue;
    if (message > 1 && table->count < kMaxGroups) {
      table->groups[table->count++] = message;
    } else if (message < 0 && message != INT32_MIN) {
      for (int i = 0; i < table->count; ++i) {
        if (table->groups[i] == -message) table->groups[i--] = table->groups[--table->count];
      }
    }
  }
}

}  // namespace trainrun::guard
