#include "runtime/process/process_posix.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "runtime/process/guard_loop.h"

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

// What the child leaves for the parent when it cannot exec: the step and errno.
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

std::string LookupEnv(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& entry : env) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
  }
  return {};
}

// How a child is placed: `guard_fd` >= 0 is the process-group guard's pipe, to which
// the child writes its pid (its group) before exec; `in_namespace` when the calling
// thread's children start in a PID namespace that trainrun is not in.
struct Placement {
  int guard_fd = -1;
  bool in_namespace = false;
};

// Everything the child reads, prepared by the parent, and the one thing it writes
// (`error`). The child shares the parent's memory (CLONE_VM) until it execs.
struct ChildArgs {
  const char* exe;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // null: stay
  const cpu_set_t* cpus;
  const unsigned long* node_mask;  // null: no memory policy
  int max_nodes;
  int targets[3];  // the fds that become 0, 1 and 2 (-1: leave)
  pid_t parent;
  int guard_fd;
  int death_signal;
  ChildError error;
};

[[noreturn]] void ChildFail(ChildArgs* args, int step) {
  args->error = ChildError{step, errno};
  _exit(127);
}

// The child, between clone and exec, on a stack of its own but in the parent's
// memory: only system calls, nothing that allocates or takes a lock, and no write
// but args->error (errno, which is the parent thread's, is not read by the parent
// after a successful clone).
int ChildMain(void* raw) {
  ChildArgs* args = static_cast<ChildArgs*>(raw);
  // Its own process group, so a terminal's Ctrl-C reaches trainrun alone and
  // trainrun signals the child's whole group.
  setpgid(0, 0);
  if (args->guard_fd >= 0) {
    // The guard learns of the group before the program can start anything in it.
    // A guard that is gone already cannot be helped here.
    const int32_t group = static_cast<int32_t>(getpid());
    ssize_t ignored = send(args->guard_fd, &group, sizeof(group), MSG_NOSIGNAL);
    (void)ignored;
  }
  prctl(PR_SET_PDEATHSIG, args->death_signal);
  if (getppid() != args->parent) _exit(127);  // trainrun died before prctl took effect
  // The parent blocked every signal around the clone; the child's handlers (its own
  // table: no CLONE_SIGHAND) go back to the defaults before the mask is emptied, so
  // no handler of trainrun's ever runs in it.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &default_action, nullptr);
  }
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
  // Move the sources out of 0..2 first so one dup2 cannot clobber another.
  int moved[3];
  for (int i = 0; i < 3; ++i) {
    moved[i] = args->targets[i] >= 0 ? fcntl(args->targets[i], F_DUPFD_CLOEXEC, 10) : -1;
    if (args->targets[i] >= 0 && moved[i] < 0) ChildFail(args, kStepDup);
  }
  for (int i = 0; i < 3; ++i) {
    if (moved[i] >= 0 && dup2(moved[i], i) < 0) ChildFail(args, kStepDup);
  }
  if (args->cwd != nullptr && chdir(args->cwd) != 0) ChildFail(args, kStepChdir);
  if (args->cpus != nullptr && sched_setaffinity(0, sizeof(*args->cpus), args->cpus) != 0) {
    ChildFail(args, kStepAffinity);
  }
  if (args->node_mask != nullptr &&
      syscall(SYS_set_mempolicy, kMpolBind, args->node_mask, args->max_nodes + 1) != 0) {
    ChildFail(args, kStepMempolicy);
  }
  execve(args->exe, args->argv, args->envp);
  ChildFail(args, kStepExec);
}

// The child's stack while it shares the parent's memory: on the parent's own stack,
// which is idle while the child runs (CLONE_VFORK). Syscall wrappers and, at worst,
// the dynamic linker's lazy binding need a few KiB.
constexpr size_t kChildStackBytes = 32 * 1024;

// The one place where trainrun starts a process: the ranks, helpers and
// CaptureOutput's short commands all start here, set up the same way. The child
// shares trainrun's memory until it execs (clone with CLONE_VM | CLONE_VFORK, as
// posix_spawn does): nothing of trainrun's address space is copied, which a fork
// does for every child, and trainrun writes to no copy-on-write page afterwards.
// Returns the pid once the child exec'd, or the step that failed in the child
// (which is then reaped).
Result<int> StartChild(const SpawnSpec& spec, Placement placement = {}) {
  if (spec.argv.empty()) return InvalidArgumentError("empty command");
  // Everything the child needs is prepared here: the child may only make system calls.
  TR_ASSIGN_OR_RETURN(std::string exe, FindExecutable(spec.argv[0], LookupEnv(spec.env, "PATH")));
  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(spec.env.size() + 1);
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
  ChildArgs args{};
  args.exe = exe.c_str();
  args.argv = argv.data();
  args.envp = envp.data();
  args.cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  args.cpus = spec.cpus.empty() ? nullptr : &cpus;
  args.node_mask = spec.memory_nodes.empty() ? nullptr : node_mask;
  args.max_nodes = kMaxNodes;
  args.targets[0] = spec.stdin_fd >= 0 ? spec.stdin_fd : dev_null;
  args.targets[1] = spec.stdout_fd;
  args.targets[2] = spec.stderr_fd;
  // In a PID namespace of its own the child sees no parent (0) while trainrun lives,
  // and the namespace's init (1) once it died.
  args.parent = placement.in_namespace ? 0 : getpid();
  args.guard_fd = placement.guard_fd;
  args.death_signal = spec.parent_death_signal;

  // No signal handler may run in the child while it shares this memory: every
  // signal is blocked from before the clone until the child has reset its handlers.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  alignas(64) char stack[kChildStackBytes];
  // CLONE_VFORK: this thread goes on once the child exec'd or exited.
  const pid_t pid =
      clone(ChildMain, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  const int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (dev_null >= 0) close(dev_null);
  if (pid < 0) return ErrnoStatus(clone_errno, "clone");
  // Setting the group here too closes the race where we signal the group before
  // the child ran setpgid (it has, by now: kept for a child that failed before).
  setpgid(pid, pid);
  if (args.error.step != 0) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return ErrnoStatus(args.error.err,
                       fmt::format("cannot {} for {}", StepName(args.error.step), spec.argv[0]));
  }
  return static_cast<int>(pid);
}

// The guard (see Isolation in the header) is its own small image, embedded in
// trainrun (guard_image.cc) and started from a memfd: nothing of trainrun's 7 MB image
// is loaded and none of its memory is copied or shared, so trainrun's end however it
// comes (SIGKILL, a crash, the OOM killer, which also kills every process sharing its
// victim's memory) leaves the guard to do its work. Where the kernel refuses to execute
// a memfd (vm.memfd_noexec = 2, a security module), or when asked, the guard is a clone
// of trainrun that shares its memory instead (CLONE_VM, on a block of its own): then
// an OOM kill of trainrun, or a crash on a kernel older than 5.16, takes it along.
extern "C" const char trainrun_guard_image_start[];
extern "C" const char trainrun_guard_image_end[];

constexpr size_t kGuardStackBytes = 64 * 1024;
constexpr unsigned kMfdExec = 0x10;  // MFD_EXEC (Linux 6.3): executable under memfd_noexec 1

// The in-memory guard's arguments, table and stack, in a mapping of its own.
struct GuardBlock {
  int socket_fd;
  int pid_namespace;
  guard::Table table;
  alignas(64) char stack[kGuardStackBytes];
};

TRAINRUN_GUARD_CODE int InMemoryGuardMain(void* raw) {
  GuardBlock* block = static_cast<GuardBlock*>(raw);
  guard::Run(block->socket_fd, block->pid_namespace != 0, &block->table);
}

// The guard image in a memfd (at fd 10 or above: fd guard::kSocketFd is the socket's
// in the child), or -1 with errno.
int GuardImageFd() {
  const unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  int fd = static_cast<int>(syscall(SYS_memfd_create, "trainrun-guard", flags | kMfdExec));
  if (fd < 0 && errno == EINVAL) {  // a kernel older than 6.3: no MFD_EXEC, none needed
    fd = static_cast<int>(syscall(SYS_memfd_create, "trainrun-guard", flags));
  }
  if (fd < 0) return -1;
  const int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  const int err = errno;
  close(fd);
  if (moved < 0) {
    errno = err;
    return -1;
  }
  const char* data = trainrun_guard_image_start;
  size_t left = static_cast<size_t>(trainrun_guard_image_end - trainrun_guard_image_start);
  while (left > 0) {
    const ssize_t n = write(moved, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int write_err = n < 0 ? errno : EIO;
      close(moved);
      errno = write_err;
      return -1;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  // Sealed: nothing can change the image between here and its exec.
  fcntl(moved, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return moved;
}

struct GuardExec {
  int image_fd;
  int socket_fd;
  bool pid_namespace;
  int err;  // set by the child when it could not exec
};

// The guard image's start, between clone and exec in trainrun's memory (see ChildMain).
int GuardExecMain(void* raw) {
  GuardExec* args = static_cast<GuardExec*>(raw);
  setpgid(0, 0);  // as the guard does itself: no race with a Ctrl-C
  // Kept across exec: the namespace's init dies with trainrun from the start.
  if (args->pid_namespace) prctl(PR_SET_PDEATHSIG, SIGKILL);
  // dup2 leaves the copy without O_CLOEXEC; a socket already there needs it cleared.
  const int moved = args->socket_fd == guard::kSocketFd
                        ? fcntl(guard::kSocketFd, F_SETFD, 0)
                        : dup2(args->socket_fd, static_cast<int>(guard::kSocketFd));
  if (moved >= 0) {
    char name[] = "trainrun-guard";
    char pid_namespace[] = "pid-namespace";
    char process_group[] = "process-group";
    char* argv[] = {name, args->pid_namespace ? pid_namespace : process_group, nullptr};
    char* envp[] = {nullptr};
    char empty[] = "";
    syscall(SYS_execveat, args->image_fd, empty, argv, envp, AT_EMPTY_PATH);
  }
  args->err = errno;
  _exit(127);
}

// Starts the guard's image with its socket `socket_fd`. Returns its pid, or -1 with
// errno (the kernel refused the memfd or its exec). In a new PID namespace a child
// that ran and could not exec was the namespace's init: the namespace is gone with it.
pid_t SpawnImageGuard(int socket_fd, bool pid_namespace) {
  const int image = GuardImageFd();
  if (image < 0) return -1;
  GuardExec args{image, socket_fd, pid_namespace, 0};
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  alignas(64) char stack[kChildStackBytes];
  const pid_t pid =
      clone(GuardExecMain, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  const int err = pid < 0 ? errno : args.err;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  close(image);
  if (pid > 0 && err == 0) return pid;
  if (pid > 0) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  errno = err;
  return -1;
}

// Starts the guard in this memory with its socket `socket_fd`. Returns its pid and
// its block (to be unmapped once the guard was reaped), or -1 with errno.
pid_t SpawnInMemoryGuard(int socket_fd, bool pid_namespace, GuardBlock** block) {
  void* memory = mmap(nullptr, sizeof(GuardBlock), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (memory == MAP_FAILED) return -1;
  GuardBlock* guard = static_cast<GuardBlock*>(memory);
  guard->socket_fd = socket_fd;
  guard->pid_namespace = pid_namespace ? 1 : 0;
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  const pid_t pid =
      clone(InMemoryGuardMain, guard->stack + sizeof(guard->stack), CLONE_VM | SIGCHLD, guard);
  const int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) {
    munmap(memory, sizeof(GuardBlock));
    errno = clone_errno;
    return -1;
  }
  *block = guard;
  return pid;
}

// The children of every thread of `pid`, from /proc/<pid>/task/<tid>/children; none
// when it is gone or unreadable.
std::vector<int> ChildrenOf(const std::string& pid) {
  std::vector<int> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(fmt::format("/proc/{}/task", pid), ec), end;
       !ec && it != end; it.increment(ec)) {
    std::ifstream children(it->path() / "children");
    int child;
    while (children >> child) out.push_back(child);
  }
  return out;
}

}  // namespace

Isolation IsolationFor(std::string_view wanted, const std::string& dev_dir, std::string* reason) {
  if (wanted == "none") return Isolation::kNone;
  if (wanted == "process-group") return Isolation::kProcessGroups;
  if (access((dev_dir + "/nvidiactl").c_str(), F_OK) == 0) {
    if (reason != nullptr) {
      *reason = "an NVIDIA GPU node (" + dev_dir +
                "/nvidiactl): CUDA fails in a PID namespace that sees the host's /proc";
    }
    return Isolation::kProcessGroups;
  }
  return Isolation::kPidNamespace;
}

std::string_view IsolationName(Isolation isolation) {
  switch (isolation) {
    case Isolation::kNone: return "none";
    case Isolation::kProcessGroups: return "process-group";
    case Isolation::kPidNamespace: return "pid-namespace";
  }
  return "unknown";
}

ProcessState ReadProcessState(int pid) {
  ProcessState state;
  std::ifstream stat_file(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat_file, line)) return state;
  // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return state;
  state.state = line[close + 2];
  std::ifstream wchan_file(fmt::format("/proc/{}/wchan", pid));
  std::getline(wchan_file, state.wchan);
  if (state.wchan == "0") state.wchan.clear();
  return state;
}

int PidOfChild(int parent, int pid_in_namespace) {
  for (int child : ChildrenOf(std::to_string(parent))) {
    std::ifstream status(fmt::format("/proc/{}/status", child));
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("NSpid:", 0) != 0) continue;
      std::istringstream ids(line.substr(6));
      int id = 0, last = 0;
      while (ids >> id) last = id;
      if (last == pid_in_namespace) return child;
      break;
    }
  }
  return pid_in_namespace;
}

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

Result<std::unique_ptr<PosixProcessSet>> PosixProcessSet::Create(Isolation wanted,
                                                                 GuardStart start) {
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
  if (wanted == Isolation::kPidNamespace) {
    Status ns = set->StartGuard(Isolation::kPidNamespace, start);
    if (ns.ok()) return set;
    set->isolation_note_ = ns.message();
    wanted = Isolation::kProcessGroups;
  }
  if (wanted == Isolation::kProcessGroups) {
    TR_RETURN_IF_ERROR(set->StartGuard(Isolation::kProcessGroups, start));
  }
  return set;
}

Status PosixProcessSet::StartGuard(Isolation isolation, GuardStart start) {
  const bool pid_namespace = isolation == Isolation::kPidNamespace;
  int outer = -1;
  if (pid_namespace) {
    // Only this thread's future children change namespace (pid_for_children), and
    // only while Spawn places one there: everything else forks where trainrun is.
    outer = open("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (outer < 0) return ErrnoStatus(errno, "/proc/thread-self/ns/pid");
    if (unshare(CLONE_NEWPID) != 0) {
      const int err = errno;
      close(outer);
      return ErrnoStatus(err, "unshare(CLONE_NEWPID)");
    }
  }
  auto restore = [outer] {
    if (outer >= 0) setns(outer, CLONE_NEWPID);
  };
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    const int err = errno;
    restore();
    if (outer >= 0) close(outer);
    return ErrnoStatus(err, "socketpair for the process guard");
  }
  GuardBlock* block = nullptr;
  std::string note;
  pid_t pid = start == GuardStart::kImage ? SpawnImageGuard(fds[0], pid_namespace) : -1;
  if (pid < 0 && start == GuardStart::kImage) {
    note = fmt::format(
        "the guard shares trainrun's memory: its image could not be run from a "
        "memfd ({})",
        std::strerror(errno));
    // A namespace whose first process ended takes no other: a fresh one.
    if (pid_namespace && (setns(outer, CLONE_NEWPID) != 0 || unshare(CLONE_NEWPID) != 0)) {
      note += fmt::format("; no new PID namespace for it: {}", std::strerror(errno));
    }
  }
  if (pid < 0) pid = SpawnInMemoryGuard(fds[0], pid_namespace, &block);
  const int clone_errno = errno;
  if (pid > 0) setpgid(pid, pid);  // as the guard does itself: no race with a Ctrl-C
  close(fds[0]);
  int inner = -1;
  if (pid > 0 && pid_namespace) {
    inner = open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
  }
  const int inner_errno = errno;
  restore();
  if (pid < 0 || (pid_namespace && inner < 0)) {
    close(fds[1]);  // the guard, if it started, ends
    if (pid > 0) {
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      if (block != nullptr) munmap(block, sizeof(GuardBlock));
    }
    if (outer >= 0) close(outer);
    return pid < 0 ? ErrnoStatus(clone_errno, "clone for the process guard")
                   : ErrnoStatus(inner_errno, "/proc/thread-self/ns/pid_for_children");
  }
  guard_pid_ = pid;
  guard_fd_ = fds[1];
  guard_block_ = block;
  guard_note_ = std::move(note);
  outer_pidns_fd_ = outer;
  inner_pidns_fd_ = inner;
  isolation_ = isolation;
  return Status::Ok();
}

PosixProcessSet::~PosixProcessSet() {
  ForgetEmptyGroups();
  if (guard_fd_ >= 0) close(guard_fd_);
  // The guard ends at once; a namespace's init waits in the kernel until every
  // process of the namespace is gone, which an unkillable one never is: a short look,
  // no more.
  // The namespace's end also waits for its processes that are our children to be
  // reaped: reap those that died.
  // The wait wakes when the guard ends (its pidfd, Linux 5.3), or looks again after
  // a millisecond.
  bool guard_ended = guard_lost_;
  const int guard_pidfd = guard_pid_ > 0 && !guard_ended
                              ? static_cast<int>(syscall(SYS_pidfd_open, guard_pid_, 0))
                              : -1;
  for (int i = 0; i < 100 && guard_pid_ > 0 && !guard_ended; ++i) {
    for (int pid : live_) waitpid(pid, nullptr, WNOHANG);
    guard_ended = waitpid(guard_pid_, nullptr, WNOHANG) == guard_pid_;
    if (guard_ended) break;
    pollfd ended{guard_pidfd, POLLIN, 0};
    if (guard_pidfd < 0 || poll(&ended, 1, 1) < 0) usleep(1000);
  }
  if (guard_pidfd >= 0) close(guard_pidfd);
  // The guard runs in this memory: its block goes only once the guard has.
  if (guard_ended && guard_block_ != nullptr) munmap(guard_block_, sizeof(GuardBlock));
  for (int fd : {epoll_fd_, signal_fd_, event_fd_, outer_pidns_fd_, inner_pidns_fd_}) {
    if (fd >= 0) close(fd);
  }
}

Result<int> PosixProcessSet::Spawn(const SpawnSpec& spec) {
  Placement placement;
  // A helper that asked for another death signal must get it, and the time to act
  // on it: it stays outside the namespace.
  const bool enter = isolation_ == Isolation::kPidNamespace && spec.parent_death_signal == SIGKILL;
  if (enter) {
    if (guard_lost_) {
      return UnavailableError(
          fmt::format("cannot start {}: the init of the run's PID namespace (pid {}) ended",
                      spec.argv.empty() ? "" : spec.argv[0], guard_pid_));
    }
    if (setns(inner_pidns_fd_, CLONE_NEWPID) != 0) {
      return ErrnoStatus(errno, fmt::format("cannot start {} in the run's PID namespace (setns)",
                                            spec.argv.empty() ? "" : spec.argv[0]));
    }
    placement.in_namespace = true;
  }
  if (isolation_ == Isolation::kProcessGroups && !guard_lost_ &&
      spec.parent_death_signal == SIGKILL) {
    placement.guard_fd = guard_fd_;
  }
  Result<int> pid = StartChild(spec, placement);
  if (enter) setns(outer_pidns_fd_, CLONE_NEWPID);
  if (!pid.ok()) return pid.status();
  live_.insert(*pid);
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
    if (pid == guard_pid_) {
      // Killed from outside: from now on nothing guards the run (and in a namespace
      // no child can start there any more).
      guard_lost_ = true;
      continue;
    }
    if (live_.erase(pid) == 0) {
      ++orphans_reaped_;
      continue;
    }
    if (isolation_ == Isolation::kProcessGroups) ended_groups_.insert(pid);
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
  ForgetEmptyGroups();
  return events;
}

void PosixProcessSet::ForgetEmptyGroups() {
  for (auto it = ended_groups_.begin(); it != ended_groups_.end();) {
    if (kill(-*it, 0) == 0 || errno != ESRCH) {
      ++it;
      continue;
    }
    // Empty now, so its number may be reused: the guard must not kill it later.
    const int32_t forget = -*it;
    if (guard_fd_ >= 0) {
      ssize_t ignored = send(guard_fd_, &forget, sizeof(forget), MSG_NOSIGNAL);
      (void)ignored;
    }
    it = ended_groups_.erase(it);
  }
}

ProcessState PosixProcessSet::Inspect(int pid) { return ReadProcessState(pid); }

// Every process of the namespace descends from its init (the guard, which adopts the
// namespace's orphans) or from a child of trainrun's placed in it (a rank still
// alive): the walk goes down from those, through /proc/<pid>/task/<tid>/children,
// instead of looking at every process of the machine (one stat each: most of
// Finalizing's cost on a busy node). Roots not in the namespace (helpers started
// outside it) are left out, as their descendants are. The guard and the roots
// themselves are not members here; their descendants are, nested namespaces too.
std::vector<int> PosixProcessSet::NamespaceMembers() const {
  std::vector<int> members;
  struct stat ns {};
  if (inner_pidns_fd_ < 0 || fstat(inner_pidns_fd_, &ns) != 0) return members;
  auto in_namespace = [&ns](int pid) {
    struct stat member {};
    return stat(fmt::format("/proc/{}/ns/pid", pid).c_str(), &member) == 0 &&
           member.st_ino == ns.st_ino && member.st_dev == ns.st_dev;
  };
  std::vector<int> pending;
  if (guard_pid_ > 0 && !guard_lost_) pending.push_back(guard_pid_);
  for (int pid : live_) {
    if (in_namespace(pid)) pending.push_back(pid);
  }
  std::set<int> seen(pending.begin(), pending.end());
  while (!pending.empty()) {
    const int parent = pending.back();
    pending.pop_back();
    for (int child : ChildrenOf(std::to_string(parent))) {
      if (!seen.insert(child).second) continue;
      members.push_back(child);
      pending.push_back(child);
    }
  }
  return members;
}

void PosixProcessSet::Interrupt() {
  uint64_t one = 1;
  ssize_t ignored = write(event_fd_, &one, sizeof(one));
  (void)ignored;
}

std::vector<int> PosixProcessSet::KillAdoptedOrphans() {
  std::vector<int> killed;
  for (int pid : ChildrenOf("self")) {
    if (live_.count(pid) != 0 || pid == guard_pid_) continue;
    if (kill(pid, SIGKILL) == 0) killed.push_back(pid);
  }
  // In a namespace orphans go to its init, not to trainrun: whatever is there but the
  // init and the live children goes.
  for (int pid : NamespaceMembers()) {
    if (live_.count(pid) != 0 || pid == guard_pid_) continue;
    if (kill(pid, SIGKILL) == 0) killed.push_back(pid);
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

Result<ExitStatus> RunToCompletion(const SpawnSpec& base,
                                   const std::function<void(std::string_view)>& line,
                                   const CancelToken* cancel) {
  SpawnSpec spec = base;
  spec.stdin_fd = -1;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  spec.stdout_fd = spec.stderr_fd = out[1];
  Result<int> started = StartChild(spec);
  close(out[1]);
  if (!started.ok()) {
    close(out[0]);
    return started.status();
  }
  const pid_t pid = *started;
  std::string pending;
  auto deliver = [&](bool flush) {
    size_t start = 0;
    for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      line(std::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    if (flush && !pending.empty()) {
      line(pending);
      pending.clear();
    }
  };
  bool open_pipe = true;
  std::optional<int> status;
  std::optional<TimePoint> term_sent;
  std::optional<TimePoint> exited_at;
  bool killed = false;
  char buf[8192];
  while (open_pipe || !status) {
    if (open_pipe) {
      pollfd p{out[0], POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        const ssize_t n = read(out[0], buf, sizeof(buf));
        if (n > 0) {
          pending.append(buf, static_cast<size_t>(n));
          deliver(false);
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          open_pipe = false;
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!status) {
      int s = 0;
      if (waitpid(pid, &s, WNOHANG) == pid) {
        status = s;
        exited_at = SystemClock()->Now();
      }
    }
    // A grandchild may keep the pipe open after the child ended: a second is enough
    // for what the child itself wrote.
    if (status && open_pipe && SystemClock()->Now() - *exited_at > std::chrono::seconds(1)) {
      open_pipe = false;
    }
    if (!status && IsCanceled(cancel)) {
      if (!term_sent) {
        kill(-pid, SIGTERM);
        term_sent = SystemClock()->Now();
      } else if (!killed && SystemClock()->Now() - *term_sent > std::chrono::seconds(5)) {
        kill(-pid, SIGKILL);
        killed = true;
      }
    }
  }
  close(out[0]);
  deliver(true);
  if (term_sent) return CanceledError(*cancel, spec.argv[0]);
  ExitStatus result;
  if (WIFEXITED(*status)) {
    result.code = WEXITSTATUS(*status);
  } else {
    result.signal = WTERMSIG(*status);
  }
  return result;
}

}  // namespace trainrun
