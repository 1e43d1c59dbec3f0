// The stop budget: how long whoever started trainrun waits between the SIGTERM it
// sends and its SIGKILL. Slurm's scancel (and a job's time limit) gives KillWait
// (30 s unless slurm.conf says otherwise), `docker stop` and `podman stop` 10 s,
// Kubernetes terminationGracePeriodSeconds (30 s, which the pod cannot read). A stop
// that honours a 30 s grace period for the ranks under any of these is SIGKILLed
// before it uploads, so the run stays `Running` and its outputs never reach history.
//
// trainrun therefore finds the budget (a flag, else the scheduler or container it
// runs in) and fits its own stop into it (DeriveStopTiming): the ranks' grace period
// gets part of it, the uploads and the final run record the rest. Everything here
// is pure except ProbeStopBudget(), which reads the environment, a few files and
// runs `scontrol show config` for at most kScontrolTimeout.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/env.h"
#include "base/status.h"

namespace trainrun {

// What each of them gives when it says nothing else.
constexpr std::chrono::seconds kSlurmDefaultKillWait{30};        // slurm.conf(5) KillWait
constexpr std::chrono::seconds kContainerStopTimeout{10};        // docker/podman stop -t default
constexpr std::chrono::seconds kKubernetesTerminationGrace{30};  // terminationGracePeriodSeconds
// How long `scontrol show config` may take before it is killed and ignored.
constexpr std::chrono::seconds kScontrolTimeout{2};

struct StopBudget {
  // None: nothing is known to SIGKILL trainrun after its SIGTERM (a terminal, a
  // plain `kill`), and the grace period keeps its default.
  std::optional<Duration> budget;
  // Where it came from, for the system log: "--stop-timeout", "Slurm KillWait
  // (scontrol show config)", "in a container (/run/.containerenv): docker/podman
  // stop's default", ...; empty when none.
  std::string source;
};

// What the environment says, gathered by ProbeStopBudget() (tests fill it in).
struct StopBudgetFacts {
  std::optional<double> flag_seconds;  // --stop-timeout / TRAINRUN_STOP_TIMEOUT
  bool slurm = false;                  // SLURM_JOB_ID is set
  std::optional<int> kill_wait_seconds;
  std::string kill_wait_from;  // "scontrol show config", "/etc/slurm/slurm.conf"
  bool kubernetes = false;     // KUBERNETES_SERVICE_HOST is set
  std::string container;       // why trainrun is in a container; empty when not
};

// The budget the facts give, first found wins: the flag (0 = none: nothing will
// SIGKILL trainrun); Slurm (KillWait as read, else its default 30 s); Kubernetes
// (30 s); a container (docker/podman's 10 s); else none.
StopBudget DecideStopBudget(const StopBudgetFacts& facts);

// KillWait in seconds from `scontrol show config` output ("KillWait = 30 sec");
// none when the line is missing or malformed.
std::optional<int> ParseScontrolKillWait(std::string_view text);
// KillWait from a slurm.conf (keys are case-insensitive, `#` starts a comment,
// several Key=Value pairs may share a line); none when it is not set there.
std::optional<int> ParseSlurmConfKillWait(std::string_view text);

// Why this process is in a container, or "" when nothing says so: /.dockerenv
// (Docker), /run/.containerenv (podman, buildah), the `container` variable (podman,
// systemd-nspawn, LXC) or being PID 1 (a container's entrypoint). `root` prefixes
// the paths (tests); `pid` is getpid().
std::string DetectContainer(const std::string& root, int pid, const EnvLookup& env);

// Runs `argv` (PATH searched) with stdin and stderr on /dev/null and returns its
// standard output. It is killed and kUnavailable returned when it has not
// closed its output within `timeout`; kNotFound when it cannot be started. Never
// blocks longer than about `timeout`, whatever the program does.
Result<std::string> RunBoundedCommand(const std::vector<std::string>& argv, Duration timeout);

struct StopBudgetProbe {
  std::optional<double> flag_seconds;
  EnvLookup env = ProcessEnv();
  std::string root;                   // prefix of every file read ("" = /)
  std::string scontrol = "scontrol";  // PATH searched
  Duration scontrol_timeout = kScontrolTimeout;
  int pid = 0;  // 0: getpid()
};

// Gathers the facts and decides. Under Slurm (SLURM_JOB_ID set) KillWait is read from
// `scontrol show config` (bounded by scontrol_timeout), else from the slurm.conf that
// $SLURM_CONF names, else /etc/slurm/slurm.conf, /etc/slurm-llnl/slurm.conf and
// /run/slurm/conf/slurm.conf (configless); a file found without KillWait gives the
// default. Nothing is read outside Slurm. Never fails: what cannot be read is left
// out of the facts.
StopBudget ProbeStopBudget(const StopBudgetProbe& probe);

// How a stop fits the budget.
struct StopTiming {
  std::optional<Duration> budget;  // as decided
  Duration grace_period{};         // SIGTERM to the ranks, then SIGKILL after this
  Duration unkillable_timeout{};   // after SIGKILL, the wait for the ranks
  // Before the budget's SIGKILL: when every node's uploads start no new retry (so
  // the head hears that they are done) and when the head stops waiting for them
  // (so it writes the final run record and its system log).
  Duration uploads_margin{};
  Duration head_margin{};
  bool grace_from_budget = false;  // no --grace-period: derived from the budget
};

// Without a budget: the given grace period and unkillable timeout, else the
// defaults (30 s, 60 s). With one, B: what is not given is derived. A reserve
// R = max(B/3, min(5 s, B/2)) is kept for Finalizing, the grace period is B - R,
// the unkillable timeout at most R/5, and the margins are 2R/5 (uploads) and R/5
// (the head). B = 10 s (docker stop): grace 5 s, uploads until 8 s, the head until
// 9 s. B = 30 s (Slurm): grace 20 s, uploads until 26 s, the head until 28 s.
StopTiming DeriveStopTiming(std::optional<Duration> budget, std::optional<Duration> grace_period,
                            std::optional<Duration> unkillable_timeout);

// One line for the system log and --dry-run: "stop budget 10 s (…): grace period
// 5 s, uploads end 2 s and the final record 1 s before the SIGKILL", or the grace
// period alone without a budget.
std::string DescribeStopTiming(const StopTiming& timing, const std::string& source);

}  // namespace trainrun
