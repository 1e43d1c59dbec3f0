// peak_rss COMMAND [ARGS...]: runs COMMAND and writes its peak resident set (and that
// of its descendants) in KiB to stderr as "peak_rss_kib N"; exits as COMMAND did.
//
// launch_bench.py measures launchers through it: the ru_maxrss that wait4 gives a
// Python parent counts the memory of Python's own process image before the exec
// (Linux keeps the larger of the old and the new image's peak across execve), about
// 10 MiB, which hides any launcher smaller than that. This small program forks
// first, so the launcher's exec replaces a copy of it instead.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: peak_rss COMMAND [ARGS...]\n");
    return 64;
  }
  const pid_t pid = fork();
  if (pid < 0) return 71;
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  if (wait4(pid, &status, 0, &usage) != pid) return 71;
  std::fprintf(stderr, "peak_rss_kib %ld\n", usage.ru_maxrss);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
