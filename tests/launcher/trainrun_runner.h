// Runs the real trainrun binary for integration tests: argv, extra environment,
// stdout and stderr captured to files, with a safety timeout (the test fails, it
// never hangs CI).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun::testing {

// Paths baked in by CMake.
inline std::string TrainrunBinary() { return TRAINRUN_BINARY; }
inline std::string RankHelper() { return RANK_HELPER_BINARY; }
inline std::string SourceRoot() { return TRAINRUN_SOURCE_DIR; }

struct Invocation {
  int exit_code = -1;  // 128+signal when killed
  std::string out;
  std::string err;
};

class TrainrunProcess {
 public:
  // Starts `argv` (argv[0] is usually TrainrunBinary()) with the current
  // environment plus `env`, stdout/stderr into files under `dir`.
  TrainrunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  const std::string& dir)
      : out_path_(dir + "/trainrun.out"), err_path_(dir + "/trainrun.err") {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(out, 1);
      dup2(err, 2);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~TrainrunProcess() {
    if (pid_ > 0 && !done_ && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int pid() const { return pid_; }
  void Signal(int sig) { kill(pid_, sig); }

  // Whether trainrun exited by `deadline`; it is not killed when not, and Wait()
  // then still gives its result.
  bool ExitsBy(std::chrono::steady_clock::time_point deadline) {
    while (true) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = status;
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // What a scheduler or container engine does to stop it (`podman stop`, `scancel`):
  // SIGTERM, then SIGKILL once `budget` has passed and trainrun is still there.
  Invocation StopLikeAScheduler(std::chrono::seconds budget) {
    Signal(SIGTERM);
    if (!ExitsBy(std::chrono::steady_clock::now() + budget)) Signal(SIGKILL);
    return Wait();
  }

  // Waits for exit; after `limit` it kills trainrun and fails the test.
  Invocation Wait(std::chrono::seconds limit = std::chrono::seconds(120)) {
    Invocation result;
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = exited_.value_or(0);
    while (!exited_) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "trainrun did not finish within " << limit.count() << " s";
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    done_ = true;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = ReadFile(out_path_);
    result.err = ReadFile(err_path_);
    return result;
  }

 private:
  std::string out_path_;
  std::string err_path_;
  pid_t pid_ = -1;
  bool done_ = false;
  std::optional<int> exited_;  // the wait status, once ExitsBy() reaped it
};

inline Invocation RunTrainrun(const std::vector<std::string>& args, const std::string& dir,
                              const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {TrainrunBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  TrainrunProcess process(argv, env, dir);
  return process.Wait();
}

// Parses a `history metrics --plot` SVG as XML (tests/launcher/svg_series.py): its
// out is {"METRIC": {"RANK": points of that rank's line}}.
inline Invocation SvgSeries(const std::string& svg, const std::string& dir) {
  TrainrunProcess process({"/usr/bin/python3", SourceRoot() + "/tests/launcher/svg_series.py", svg},
                          {}, dir);
  return process.Wait();
}

// Polls `condition` every 10 ms for up to `limit`.
inline bool WaitFor(const std::function<bool()>& condition,
                    std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

// A TCP port on this machine that was free a moment ago (the kernel's pick for port
// 0); nothing holds it.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A job's shell script for restart tests: rank `failing_rank` saves a checkpoint in
// its working directory and fails on attempt 1 (exit 3, "NCCL timeout" on stderr);
// on attempt 2 it finds the file and says "resumed from step 500 on attempt 2
// (restart 1 of N)". Every other rank waits on attempt 1 (for the fail-fast to stop
// it) and succeeds on attempt 2, saying "rank R on attempt 2 (restart 1)".
inline std::string ResumingRankScript(int failing_rank) {
  return "\nfailing_rank=" + std::to_string(failing_rank) + R"sh(
if [ "$RANK" != "$failing_rank" ]; then
  [ "$TRAINRUN_ATTEMPT" = 1 ] && exec sleep 60
  echo "rank $RANK on attempt $TRAINRUN_ATTEMPT (restart $TORCHELASTIC_RESTART_COUNT)"; exit 0
fi
if [ -f checkpoint.txt ]; then
  echo "resumed from step $(cat checkpoint.txt) on attempt $TRAINRUN_ATTEMPT (restart $TORCHELASTIC_RESTART_COUNT of $TORCHELASTIC_MAX_RESTARTS)"
  exit 0
fi
echo 500 > checkpoint.txt
echo "saved step 500 on attempt $TRAINRUN_ATTEMPT"
echo "NCCL timeout" >&2
exit 3
)sh";
}

inline bool ProcessAlive(int pid) {
  if (kill(pid, 0) != 0) return false;
  // A zombie is dead for our purposes (its parent may not have reaped it yet).
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string p, comm, state;
  stat >> p >> comm >> state;
  return state != "Z";
}

}  // namespace trainrun::testing
