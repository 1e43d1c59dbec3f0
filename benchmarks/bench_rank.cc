// A stand-in rank for multinode_bench, the same under trainrun and torchrun (both
// set RANK). Times are CLOCK_REALTIME seconds, comparable across namespaces.
//
// clang-format off
//   bench_rank start DIR                       write DIR/start.<rank> and exit 0
//   bench_rank hang DIR FAIL_RANK AFTER_MS CODE
//       write DIR/pid.<rank>; rank FAIL_RANK writes DIR/failed after AFTER_MS and
//       exits CODE; the others wait for a signal
//   bench_rank restart DIR FAIL_RANK AFTER_MS CODE
//       on the first attempt (TORCHELASTIC_RESTART_COUNT unset or 0, as trainrun and
//       torchrun set it) as `hang`; on a later one write DIR/restart.<rank> and exit 0
// clang-format on
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void Write(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  std::fputs(text.c_str(), f);
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const char* rank_env = std::getenv("RANK");
  if (argc < 3 || rank_env == nullptr) {
    std::fprintf(stderr, "usage: bench_rank start|hang|restart DIR ... (with RANK set)\n");
    return 2;
  }
  const std::string mode = argv[1], dir = argv[2], rank = rank_env;
  if (mode == "start") {
    char text[64];
    std::snprintf(text, sizeof(text), "%.9f\n", Now());
    Write(dir + "/start." + rank, text);
    return 0;
  }
  const char* restarts = std::getenv("TORCHELASTIC_RESTART_COUNT");
  if (mode == "restart" && restarts != nullptr && std::atoi(restarts) > 0) {
    char text[64];
    std::snprintf(text, sizeof(text), "%.9f\n", Now());
    Write(dir + "/restart." + rank, text);
    return 0;
  }
  if ((mode == "hang" || mode == "restart") && argc >= 6) {
    // The pid as the host sees it (/proc is the host's: trainrun may run the ranks in
    // a PID namespace of their own, where getpid() is a small number).
    char self[32] = {};
    const ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
    Write(dir + "/pid." + rank, (n > 0 ? std::string(self, n) : std::to_string(getpid())) + "\n");
    if (std::atoi(argv[3]) == std::atoi(rank.c_str())) {
      usleep(std::atoi(argv[4]) * 1000);
      char text[64];
      std::snprintf(text, sizeof(text), "%.9f\n", Now());
      Write(dir + "/failed", text);
      return std::atoi(argv[5]);
    }
    while (true) pause();
  }
  return 2;
}
