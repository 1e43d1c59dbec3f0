#include "runtime/process/process_posix.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

extern char** environ;

namespace trainrun {
namespace {

constexpr int kSupervisionSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
constexpr int kMpolBind = 2;  // MPOL_BIND from <numaif.h>, which needs libnuma-dev

sigset_t SupervisionSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kSupervisionSignals) sigaddset(&set, s);
  return set;
}

// What the child writes to the error pipe when it cannot exec: the step and errno.
struct ChildError {
  int step;
  int err;
};
enum ChildStep { kStepDup = 1, kStepChdir, kStepAffinity, kStepMempolicy, kStepExec };

const char* StepName(int step) {
  switch (step) {
    case kStepDup: return "redirect stdio";
    case kStepChdir: return "change to the working directory";
    case kStepAffinity: return "set CPU affinity";
    case kStepMempolicy: return "set the NUMA memory policy";
    default: return "execute";
  }
}

[[noreturn]] void ChildFail(int error_fd, int step) {
  ChildError e{step, errno};
  ssize_t ignored = write(error_fd, &e, sizeof(e));
  (void)ignored;
  _exit(127);
}

std::string LookupEnv(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& entry : env) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
  }
  return {};
}

// The one place where trainrun forks: the ranks, helpers and CaptureOutput's short
// commands all start here, set up the same way. Returns the pid once the child
// exec'd, or the step that failed in the child (which is then reaped).
Result<int> StartChild(const SpawnSpec& spec) {
  if (spec.argv.empty()) return InvalidArgumentError("empty command");
  // Everything the child needs is prepared here: after fork() in a threaded
  // process only async-signal-safe calls are allowed.
  TR_ASSIGN_OR_RETURN(std::string exe, FindExecutable(spec.argv[0], LookupEnv(spec.env, "PATH")));
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (int cpu : spec.cpus) {
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, &cpus);
  }
  unsigned long node_mask[16] = {};  // up to 1024 NUMA nodes
  constexpr int kBitsPerWord = static_cast<int>(8 * sizeof(unsigned long));
  constexpr int kMaxNodes = static_cast<int>(sizeof(node_mask) * 8);
  for (int node : spec.memory_nodes) {
    if (node >= 0 && node < kMaxNodes) {
      node_mask[node / kBitsPerWord] |= 1UL << (node % kBitsPerWord);
    }
  }

  int dev_null = -1;
  if (spec.stdin_fd < 0) {
    dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (dev_null < 0) return ErrnoStatus(errno, "/dev/null");
  }
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    if (dev_null >= 0) close(dev_null);
    return ErrnoStatus(errno, "pipe2");
  }

  const pid_t parent = getpid();
  const int death_signal = spec.parent_death_signal;
  const sigset_t empty_mask = [] {
    sigset_t s;
    sigemptyset(&s);
    return s;
  }();
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  const int targets[3] = {spec.stdin_fd >= 0 ? spec.stdin_fd : dev_null, spec.stdout_fd,
                          spec.stderr_fd};

  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(error_pipe[0]);
    close(error_pipe[1]);
    if (dev_null >= 0) close(dev_null);
    return ErrnoStatus(err, "fork");
  }
  if (pid == 0) {
    // Child: its own process group, so a terminal's Ctrl-C reaches trainrun alone
    // and trainrun signals the child's whole group.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(127);  // trainrun died before prctl took effect
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) sigaction(s, &default_action, nullptr);
    }
    sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
    // Move the sources out of 0..2 first so one dup2 cannot clobber another.
    int moved[3];
    for (int i = 0; i < 3; ++i) {
      moved[i] = targets[i] >= 0 ? fcntl(targets[i], F_DUPFD_CLOEXEC, 10) : -1;
      if (targets[i] >= 0 && moved[i] < 0) ChildFail(error_pipe[1], kStepDup);
    }
    for (int i = 0; i < 3; ++i) {
      if (moved[i] >= 0 && dup2(moved[i], i) < 0) ChildFail(error_pipe[1], kStepDup);
    }
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
      ChildFail(error_pipe[1], kStepChdir);
    }
    if (!spec.cpus.empty() && sched_setaffinity(0, sizeof(cpus), &cpus) != 0) {
      ChildFail(error_pipe[1], kStepAffinity);
    }
    if (!spec.memory_nodes.empty() &&
        syscall(SYS_set_mempolicy, kMpolBind, node_mask, kMaxNodes + 1) != 0) {
      ChildFail(error_pipe[1], kStepMempolicy);
    }
    execve(exe.c_str(), argv.data(), envp.data());
    ChildFail(error_pipe[1], kStepExec);
  }

  // Parent. Setting the group here too closes the race where we signal the group
  // before the child ran setpgid.
  setpgid(pid, pid);
  close(error_pipe[1]);
  if (dev_null >= 0) close(dev_null);
  ChildError child_error{};
  ssize_t n;
  do {
    n = read(error_pipe[0], &child_error, sizeof(child_error));
  } while (n < 0 && errno == EINTR);
  close(error_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_error))) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return ErrnoStatus(child_error.err,
                       fmt::format("cannot {} for {}", StepName(child_error.step), spec.argv[0]));
  }
  return static_cast<int>(pid);
}

}  // namespace

void BlockSupervisionSignals() {
  sigset_t set = SupervisionSignalSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A rank's closed pipe must be an EPIPE, never a fatal signal for trainrun.
  signal(SIGPIPE, SIG_IGN);
}

bool SupervisionSignalPending() {
  sigset_t pending;
  sigpending(&pending);
  for (int s : kSupervisionSignals) {
    if (s != SIGCHLD && sigismember(&pending, s) == 1) return true;
  }
  return false;
}

Result<std::string> FindExecutable(const std::string& program, const std::string& path_list) {
  if (program.empty()) return InvalidArgumentError("empty program name");
  if (program.find('/') != std::string::npos) {
    if (access(program.c_str(), F_OK) != 0) return ErrnoStatus(errno, program);
    return program;
  }
  std::stringstream dirs(path_list.empty() ? "/usr/local/bin:/usr/bin:/bin" : path_list);
  std::string dir;
  bool found_not_executable = false;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    struct stat st {};
    if (stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    found_not_executable = true;
  }
  if (found_not_executable) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("{}: found on PATH but not executable", program));
  }
  return NotFoundError(fmt::format("{}: not found on PATH ({})", program, path_list));
}

std::string FindOnPath(const std::string& name) {
  const char* path = getenv("PATH");
  Result<std::string> found = FindExecutable(name, path != nullptr ? path : "");
  return found.ok() ? *found : "";
}

Result<std::unique_ptr<PosixProcessSet>> PosixProcessSet::Create() {
  std::unique_ptr<PosixProcessSet> set(new PosixProcessSet());
  sigset_t signals = SupervisionSignalSet();
  set->signal_fd_ = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (set->signal_fd_ < 0) return ErrnoStatus(errno, "signalfd");
  set->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (set->event_fd_ < 0) return ErrnoStatus(errno, "eventfd");
  set->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (set->epoll_fd_ < 0) return ErrnoStatus(errno, "epoll_create1");
  for (int fd : {set->signal_fd_, set->event_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(set->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoStatus(errno, "epoll_ctl");
    }
  }
  // Orphaned grandchildren come to us, not to init, so they are reaped and can be
  // cleaned up at the end of the run. As PID 1 this is what happens anyway.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return set;
}

PosixProcessSet::~PosixProcessSet() {
  for (int fd : {epoll_fd_, signal_fd_, event_fd_}) {
    if (fd >= 0) close(fd);
  }
}

Result<int> PosixProcessSet::Spawn(const SpawnSpec& spec) {
  TR_ASSIGN_OR_RETURN(int pid, StartChild(spec));
  live_.insert(pid);
  return pid;
}

bool PosixProcessSet::Running(int pid) {
  if (live_.count(pid) == 0) return false;
  // WNOWAIT leaves the zombie for Wait() to reap and report.
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return false;
  }
  return info.si_pid == 0;
}

Status PosixProcessSet::SignalGroup(int pgid, int signal) {
  if (pgid <= 1) return InternalError(fmt::format("refusing to signal group {}", pgid));
  if (kill(-pgid, signal) != 0 && errno != ESRCH) {
    return ErrnoStatus(errno, fmt::format("kill(-{}, {})", pgid, SignalName(signal)));
  }
  return Status::Ok();
}

void PosixProcessSet::ReapChildren(std::vector<ProcessEvent>* events) {
  while (true) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    if (live_.erase(pid) == 0) {
      ++orphans_reaped_;
      continue;
    }
    ProcessEvent event;
    event.kind = ProcessEvent::Kind::kExited;
    event.pid = pid;
    if (WIFSIGNALED(status)) {
      event.status.signal = WTERMSIG(status);
    } else {
      event.status.code = WEXITSTATUS(status);
    }
    events->push_back(event);
  }
}

std::vector<ProcessEvent> PosixProcessSet::Wait(std::optional<TimePoint> deadline) {
  std::vector<ProcessEvent> events;
  while (events.empty()) {
    const int timeout_ms = deadline ? PollTimeoutMs(*deadline - clock()->Now()) : -1;
    epoll_event ready[4];
    int n = epoll_wait(epoll_fd_, ready, 4, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.fd == event_fd_) {
        uint64_t count;
        while (read(event_fd_, &count, sizeof(count)) > 0) {
        }
        ProcessEvent event;
        event.kind = ProcessEvent::Kind::kInterrupt;
        events.push_back(event);
      } else if (ready[i].data.fd == signal_fd_) {
        signalfd_siginfo info;
        while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
          if (info.ssi_signo == SIGCHLD) continue;  // reaped below
          ProcessEvent event;
          event.kind = ProcessEvent::Kind::kSignal;
          event.signal = static_cast<int>(info.ssi_signo);
          events.push_back(event);
        }
      }
    }
    // SIGCHLDs coalesce; reap everything that is ready whatever woke us.
    ReapChildren(&events);
    if (n == 0) break;  // deadline
  }
  return events;
}

void PosixProcessSet::Interrupt() {
  uint64_t one = 1;
  ssize_t ignored = write(event_fd_, &one, sizeof(one));
  (void)ignored;
}

std::vector<int> PosixProcessSet::KillAdoptedOrphans() {
  std::vector<int> killed;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::filesystem::directory_entry& task = *it;
    std::ifstream children(task.path() / "children");
    int pid;
    while (children >> pid) {
      if (live_.count(pid) != 0) continue;
      if (kill(pid, SIGKILL) == 0) killed.push_back(pid);
    }
  }
  return killed;
}

Result<std::string> CaptureOutput(const std::vector<std::string>& argv, const std::string& cwd) {
  SpawnSpec spec;
  spec.argv = argv;
  for (char** e = environ; *e != nullptr; ++e) spec.env.emplace_back(*e);
  spec.cwd = cwd;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  int dev_null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (dev_null < 0) {
    int err = errno;
    close(out[0]);
    close(out[1]);
    return ErrnoStatus(err, "/dev/null");
  }
  spec.stdout_fd = out[1];
  spec.stderr_fd = dev_null;
  Result<int> started = StartChild(spec);
  close(out[1]);
  close(dev_null);
  if (!started.ok()) {
    close(out[0]);
    return started.status();
  }
  const pid_t pid = *started;
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    output.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return IoError(fmt::format("{} failed ({})", argv[0],
                               WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status))
                                                 : SignalName(WTERMSIG(status))));
  }
  return output;
}

}  // namespace trainrun
