// A stand-in for a training rank, for the integration tests: starts in a
// millisecond and does exactly what the flags say. Its rank comes from $RANK.
//
// clang-format off
//   --pid-dir DIR          write DIR/<rank>.pid once ready for signals (the node's pid),
//                          after its output; a failing rank (below) first waits (up to
//                          60 s) for all $WORLD_SIZE pid files, so the others are ready
//   --fail-rank R          rank R exits with --exit-code (default 1) after --after-ms
//   --segv-rank R          rank R dies of SIGSEGV after --after-ms
//   --ignore-term-rank R   rank R ignores SIGTERM
//   --sleep-ms T           the other ranks exit 0 after T ms (default: wait for a signal)
//   --spew-mb N            write N MB of numbered lines to stdout (and N/10 to stderr)
//   --write-output         write outputs/rank<R>.txt before anything else
//   --orphan               leave an orphaned grandchild that exits after 200 ms, then
//                          count zombies in /proc after 1 s; exit 1 if there are any
//   --print-env NAME...    print NAME=value for each name, then continue
// clang-format on
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

int Flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

const char* StringFlag(int argc, char** argv, const char* name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return nullptr;
}

bool Has(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Lines of exactly 100 bytes: "r<rank> <stream> <seq, 10 digits> xxx...\n".
void Spew(int fd, int rank, const char* stream, long bytes) {
  std::string chunk;
  long lines = bytes / 100;
  for (long i = 0; i < lines; ++i) {
    char head[64];
    int n = std::snprintf(head, sizeof(head), "r%d %s %010ld ", rank, stream, i);
    std::string line(head, static_cast<size_t>(n));
    line.append(99 - line.size(), 'x');
    line += '\n';
    chunk += line;
    if (chunk.size() >= (1 << 16)) {
      WriteAll(fd, chunk);
      chunk.clear();
    }
  }
  WriteAll(fd, chunk);
}

int CountZombies() {
  int zombies = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string pid, comm, state;
    if (stat >> pid >> comm >> state && state == "Z") {
      std::printf("zombie: pid %s %s\n", pid.c_str(), comm.c_str());
      ++zombies;
    }
  }
  closedir(proc);
  return zombies;
}

// Waits until every rank of the job ($WORLD_SIZE) has written its pid file in `dir`,
// for up to 60 s: a rank that fails before the others are ready would have them
// stopped before they ignore SIGTERM or write their pid file, however the test
// meant it, on a loaded machine.
void WaitForEveryPidFile(const char* dir) {
  const char* world = std::getenv("WORLD_SIZE");
  const int ranks = world ? std::atoi(world) : 0;
  for (int tries = 0; tries < 6000; ++tries) {
    int ready = 0;
    for (int r = 0; r < ranks; ++r) {
      const std::string pid_file = std::string(dir) + "/" + std::to_string(r) + ".pid";
      ready += access(pid_file.c_str(), F_OK) == 0 ? 1 : 0;
    }
    if (ready == ranks) return;
    usleep(10000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* rank_env = std::getenv("RANK");
  const int rank = rank_env ? std::atoi(rank_env) : -1;
  const int after_ms = Flag(argc, argv, "--after-ms", 100);
  const char* pid_dir = StringFlag(argc, argv, "--pid-dir");
  // Before the pid file, which tells a test that the rank is ready for its signals.
  if (rank == Flag(argc, argv, "--ignore-term-rank", -2)) signal(SIGTERM, SIG_IGN);

  // Also before the pid file: a test that stops the run once it sees the pid files
  // expects every rank's output to be there already.
  if (Has(argc, argv, "--write-output")) {
    mkdir("outputs", 0755);
    std::ofstream("outputs/rank" + std::to_string(rank) + ".txt") << "rank " << rank << "\n";
  }
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--print-env") != 0) continue;
    for (int j = i + 1; j < argc && argv[j][0] != '-'; ++j) {
      const char* value = std::getenv(argv[j]);
      std::printf("%s=%s\n", argv[j], value ? value : "<unset>");
    }
  }
  std::fflush(stdout);
  if (pid_dir) {
    // The pid as the test sees it: trainrun may start the ranks in a PID namespace of
    // their own, where getpid() is another number. /proc is the node's, so its "self"
    // names this process by the node's pid.
    std::error_code ec;
    std::string self = std::filesystem::read_symlink("/proc/self", ec).string();
    if (ec || self.empty()) self = std::to_string(getpid());
    // Renamed into place, so that a test never reads half a pid.
    const std::string pid_file = std::string(pid_dir) + "/" + std::to_string(rank) + ".pid";
    std::ofstream(pid_file + ".tmp") << self << "\n";
    std::rename((pid_file + ".tmp").c_str(), pid_file.c_str());
  }

  if (Has(argc, argv, "--orphan")) {
    pid_t child = fork();
    if (child == 0) {
      setsid();
      if (fork() == 0) {
        usleep(200000);
        _exit(0);
      }
      _exit(0);
    }
    waitpid(child, nullptr, 0);
    sleep(1);
    int zombies = CountZombies();
    std::printf("zombies: %d\n", zombies);
    return zombies == 0 ? 0 : 1;
  }

  if (int mb = Flag(argc, argv, "--spew-mb", 0); mb > 0) {
    Spew(STDOUT_FILENO, rank, "out", static_cast<long>(mb) << 20);
    Spew(STDERR_FILENO, rank, "err", (static_cast<long>(mb) << 20) / 10);
    return 0;
  }

  if (rank == Flag(argc, argv, "--fail-rank", -2)) {
    if (pid_dir) WaitForEveryPidFile(pid_dir);
    usleep(after_ms * 1000);
    std::fprintf(stderr, "rank %d: something went wrong\nValueError: boom\n", rank);
    return Flag(argc, argv, "--exit-code", 1);
  }
  if (rank == Flag(argc, argv, "--segv-rank", -2)) {
    if (pid_dir) WaitForEveryPidFile(pid_dir);
    usleep(after_ms * 1000);
    raise(SIGSEGV);
  }
  int sleep_ms = Flag(argc, argv, "--sleep-ms", -1);
  if (sleep_ms >= 0) {
    usleep(sleep_ms * 1000);
    return 0;
  }
  while (true) pause();
}
