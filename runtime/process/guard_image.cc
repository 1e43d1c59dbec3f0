// The process guard as a program of its own: a few KiB with no C library, which
// trainrun embeds (guard_image_data.S) and starts from a memfd, so starting it loads
// neither trainrun's 7 MB image nor a copy of trainrun's memory, and it shares none of
// it: trainrun's end (SIGKILL, a crash, the OOM killer) never takes the guard along.
//   trainrun-guard MODE    with its socket as fd 3; MODE: pid-namespace or process-group
#include "runtime/process/guard_loop.h"

namespace {

trainrun::guard::Table table;  // zeroed: only the pages its groups use are touched

bool IsPidNamespace(const char* mode) {
  const char* want = "pid-namespace";
  while (*mode != '\0' && *mode == *want) {
    ++mode;
    ++want;
  }
  return *mode == '\0' && *want == '\0';
}

}  // namespace

// The stack at entry: argc, then argv. `used`: only _start's assembly calls it, which
// link-time optimisation would not see.
extern "C" [[noreturn]] TRAINRUN_GUARD_CODE __attribute__((used)) void GuardImageMain(long* stack) {
  const long argc = stack[0];
  char** argv = reinterpret_cast<char**>(stack + 1);
  trainrun::guard::Run(trainrun::guard::kSocketFd, argc > 1 && IsPidNamespace(argv[1]), &table);
}

#if defined(__x86_64__)
__asm__(
    ".text\n.globl _start\n_start:\n"
    "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call GuardImageMain\n  hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl _start\n_start:\n  mov x0, sp\n  bl GuardImageMain\n  brk #0\n");
#endif
