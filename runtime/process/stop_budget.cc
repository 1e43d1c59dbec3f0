#include "runtime/process/stop_budget.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "runtime/process/stop_policy.h"

extern char** environ;

namespace trainrun {

namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<int> LeadingInt(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  int value = 0;
  auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() + i || value < 0) return std::nullopt;
  return value;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

Duration Seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

}  // namespace

StopBudget DecideStopBudget(const StopBudgetFacts& facts) {
  if (facts.flag_seconds) {
    if (*facts.flag_seconds <= 0) return {std::nullopt, "--stop-timeout 0: no stop budget"};
    return {Seconds(*facts.flag_seconds), "--stop-timeout / TRAINRUN_STOP_TIMEOUT"};
  }
  if (facts.slurm) {
    if (facts.kill_wait_seconds) {
      return {std::chrono::seconds(*facts.kill_wait_seconds),
              fmt::format("Slurm KillWait ({})", facts.kill_wait_from)};
    }
    return {kSlurmDefaultKillWait, "Slurm KillWait, not readable here: Slurm's default"};
  }
  if (facts.kubernetes) {
    return {kKubernetesTerminationGrace,
            "Kubernetes (KUBERNETES_SERVICE_HOST): terminationGracePeriodSeconds' default"};
  }
  if (!facts.container.empty()) {
    return {kContainerStopTimeout,
            fmt::format("in a container ({}): docker/podman stop's default", facts.container)};
  }
  return {};
}

std::optional<int> ParseScontrolKillWait(std::string_view text) {
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    // "KillWait                = 30 sec"
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    key.erase(key.find_last_not_of(" \t") + 1);
    if (Lower(key) != "killwait") continue;
    return LeadingInt(std::string_view(line).substr(eq + 1));
  }
  return std::nullopt;
}

std::optional<int> ParseSlurmConfKillWait(std::string_view text) {
  std::istringstream lines{std::string(text)};
  std::string line;
  std::optional<int> found;
  while (std::getline(lines, line)) {
    if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      size_t eq = word.find('=');
      if (eq == std::string::npos || Lower(word.substr(0, eq)) != "killwait") continue;
      // The last setting wins, as in Slurm's own parser.
      if (std::optional<int> v = LeadingInt(std::string_view(word).substr(eq + 1))) found = v;
    }
  }
  return found;
}

std::string DetectContainer(const std::string& root, int pid, const EnvLookup& env) {
  if (Exists(root + "/.dockerenv")) return "/.dockerenv";
  if (Exists(root + "/run/.containerenv")) return "/run/.containerenv";
  if (std::string engine = EnvString(env, "container"); !engine.empty()) {
    return fmt::format("container={}", engine);
  }
  if (pid == 1) return "trainrun is PID 1";
  return "";
}

Result<std::string> RunBoundedCommand(const std::vector<std::string>& argv, Duration timeout) {
  if (argv.empty()) return InvalidArgumentError("no command");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe for " + argv[0]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // trainrun blocks its stop signals in every thread; the program gets them back.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(pipe_fds[1]);
  if (err != 0) {
    close(pipe_fds[0]);
    return NotFoundError(ErrnoStatus(err, argv[0]).message());
  }
  // A pidfd names this process even once it is gone and its pid reused: trainrun
  // reaps orphans (a subreaper, or PID 1), so the pid alone could be stale by the
  // time it is killed.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  std::string out;
  const TimePoint deadline = SystemClock()->Now() + timeout;
  bool timed_out = false;
  while (true) {
    const Duration left = deadline - SystemClock()->Now();
    if (left <= Duration(0)) {
      timed_out = true;
      break;
    }
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1);
    int n = poll(&fd, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the deadline check above ends it
    char buf[4096];
    ssize_t got = read(pipe_fds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (out.size() < (1 << 20)) out.append(buf, static_cast<size_t>(got));
  }
  close(pipe_fds[0]);
  if (timed_out) {
    if (pidfd >= 0) {
      syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    } else {
      kill(pid, SIGKILL);
    }
  }
  // ECHILD when trainrun's reaper got there first; the output is what counts.
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
  if (timed_out) {
    return UnavailableError(
        fmt::format("{} did not answer within {:g} s", argv[0], ToSeconds(timeout)));
  }
  return out;
}

StopBudget ProbeStopBudget(const StopBudgetProbe& probe) {
  StopBudgetFacts facts;
  facts.flag_seconds = probe.flag_seconds;
  if (!facts.flag_seconds) {
    facts.slurm = !EnvString(probe.env, "SLURM_JOB_ID").empty();
    facts.kubernetes = !EnvString(probe.env, "KUBERNETES_SERVICE_HOST").empty();
    facts.container = DetectContainer(probe.root, probe.pid != 0 ? probe.pid : getpid(), probe.env);
  }
  if (facts.slurm) {
    Result<std::string> config =
        RunBoundedCommand({probe.scontrol, "show", "config"}, probe.scontrol_timeout);
    if (config.ok()) {
      facts.kill_wait_seconds = ParseScontrolKillWait(*config);
      facts.kill_wait_from = "scontrol show config";
    }
    if (!facts.kill_wait_seconds) {
      std::vector<std::string> paths;
      if (std::string named = EnvString(probe.env, "SLURM_CONF"); !named.empty()) {
        paths.push_back(named);
      }
      for (const char* p :
           {"/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf/slurm.conf"}) {
        paths.push_back(probe.root + p);
      }
      for (const std::string& path : paths) {
        Result<std::string> text = ReadFileToString(path);
        if (!text.ok()) continue;
        // A slurm.conf that does not set KillWait has Slurm's default.
        facts.kill_wait_seconds =
            ParseSlurmConfKillWait(*text).value_or(static_cast<int>(kSlurmDefaultKillWait.count()));
        facts.kill_wait_from = path;
        break;
      }
    }
  }
  return DecideStopBudget(facts);
}

StopTiming DeriveStopTiming(std::optional<Duration> budget, std::optional<Duration> grace_period,
                            std::optional<Duration> unkillable_timeout) {
  StopTiming t;
  t.budget = budget;
  t.grace_period = grace_period.value_or(kDefaultGracePeriod);
  t.unkillable_timeout = unkillable_timeout.value_or(kDefaultUnkillableTimeout);
  if (!budget) return t;
  const Duration b = *budget;
  const Duration reserve =
      std::max<Duration>(b / 3, std::min<Duration>(std::chrono::seconds(5), b / 2));
  if (!grace_period) {
    t.grace_period = b - reserve;
    t.grace_from_budget = true;
  }
  if (!unkillable_timeout) t.unkillable_timeout = std::min(t.unkillable_timeout, reserve / 5);
  t.uploads_margin = reserve * 2 / 5;
  t.head_margin = reserve / 5;
  return t;
}

std::string DescribeStopTiming(const StopTiming& timing, const std::string& source) {
  if (!timing.budget) {
    return fmt::format("grace period {:g} s (no stop budget: nothing is known to SIGKILL trainrun)",
                       ToSeconds(timing.grace_period));
  }
  std::string text = fmt::format(
      "stop budget {:g} s ({}): grace period {:g} s{}, uploads end {:g} s and the final record "
      "{:g} s before the SIGKILL",
      ToSeconds(*timing.budget), source, ToSeconds(timing.grace_period),
      timing.grace_from_budget ? "" : " (--grace-period)", ToSeconds(timing.uploads_margin),
      ToSeconds(timing.head_margin));
  return text;
}

}  // namespace trainrun
