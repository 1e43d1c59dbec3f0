// The real ProcessSet for Linux: fork/exec, signalfd, eventfd, epoll.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/cancel.h"
#include "runtime/process/process.h"

namespace trainrun {

// Blocks SIGCHLD, SIGTERM, SIGINT, SIGHUP and SIGPIPE-as-signal in the calling
// thread so they are read through a signalfd instead of interrupting anything.
// main() calls it first, before any thread starts, so every thread inherits the
// mask. Children get an empty mask and default dispositions back before exec.
void BlockSupervisionSignals();

// Whether a SIGTERM, SIGINT or SIGHUP is waiting (blocked) for a signalfd to read
// it: a cancel that arrived before the supervisor started listening.
bool SupervisionSignalPending();

// How a PosixProcessSet keeps the processes it spawns, and everything they start,
// from outliving trainrun, however trainrun ends (SIGKILL included). Every mode also
// gives each child PR_SET_PDEATHSIG and makes trainrun the subreaper of its
// descendants, so orphans come back to it while it lives.
enum class Isolation {
  // Nothing more: only the direct children die with trainrun.
  kNone,
  // A guard process (not in any child's group, deaf to SIGTERM/SIGINT/SIGHUP) holds a
  // pipe from trainrun; each child writes its process group to it before exec. When
  // the pipe closes (trainrun ended, however) the guard sends SIGKILL to every group
  // not yet known to be empty. Needs no privilege; a process that left its group
  // (setsid, setpgid) escapes it.
  kProcessGroups,
  // Every child starts in one PID namespace (one per set, so all of a node's ranks
  // share it, as NCCL and Open MPI's shared memory expect) whose init is the guard:
  // it reaps the namespace's orphans and dies with trainrun (PR_SET_PDEATHSIG SIGKILL
  // and the pipe), and the kernel then kills every process in the namespace, those
  // that called setsid or double-forked too. Needs CAP_SYS_ADMIN (root, or root of a
  // user namespace); the children stay trainrun's children, with pids as trainrun
  // sees them.
  kPidNamespace,
  // In both guarded modes a child that asks for a parent-death signal other than
  // SIGKILL (a FUSE helper that unmounts on its way out) is left to that signal: it
  // starts outside the namespace and is not in the guard's table.
};
std::string_view IsolationName(Isolation isolation);  // "none", "process-group", "pid-namespace"

// What `--isolation WANTED` ("auto", "process-group" or "none") asks for on this node.
// "auto" is a PID namespace, except where `dev_dir` holds NVIDIA's device files
// (nvidiactl): the CUDA driver fails with cudaErrorOperatingSystem in a PID namespace
// that still sees the host's /proc (found on an H200), so a GPU node gets the
// process-group guard and `*reason` says why. The result is what PosixProcessSet::Create
// is asked for; it may still fall back to process groups where namespaces are denied.
Isolation IsolationFor(std::string_view wanted, const std::string& dev_dir, std::string* reason);

// How the guard starts: as its own small image (run from a memfd), falling back to a
// clone that shares trainrun's memory where the kernel refuses that; or (tests) as
// that clone from the start.
enum class GuardStart { kImage, kInMemory };

class PosixProcessSet : public ProcessSet {
 public:
  // Creates the signalfd/eventfd/epoll set, makes trainrun the subreaper of its
  // descendants (PR_SET_CHILD_SUBREAPER), so orphans of the ranks are reaped here
  // whether or not trainrun is PID 1, and starts the guard `wanted` asks for.
  // kPidNamespace falls back to kProcessGroups where the kernel refuses a new PID
  // namespace; isolation() and isolation_note() say what was had and why. Fails only
  // if the kernel refuses the fds or the guard cannot be started.
  static Result<std::unique_ptr<PosixProcessSet>> Create(Isolation wanted = Isolation::kNone,
                                                         GuardStart start = GuardStart::kImage);
  // Closes the guard's pipe: the guard then kills what is left (see Isolation).
  ~PosixProcessSet() override;

  // Spawn, from any thread. In kPidNamespace a child that cannot be placed in the
  // namespace (its init is gone) is an error, never started outside.
  Result<int> Spawn(const SpawnSpec& spec) override;
  bool Running(int pid) override;
  Status SignalGroup(int pgid, int signal) override;
  std::vector<ProcessEvent> Wait(std::optional<TimePoint> deadline) override;
  void Interrupt() override;
  ProcessState Inspect(int pid) override;
  Clock* clock() override { return SystemClock(); }

  // Sends SIGKILL to every remaining process of the run that this set did not spawn:
  // orphans the ranks left behind and trainrun adopted, and in kPidNamespace every
  // process of the namespace but its init. Returns their pids.
  std::vector<int> KillAdoptedOrphans();

  // How many adopted orphans Wait() reaped so far (in kPidNamespace the namespace's
  // init reaps them instead).
  int orphans_reaped() const { return orphans_reaped_; }

  Isolation isolation() const { return isolation_; }
  // Why the isolation asked for could not be had ("unshare(CLONE_NEWPID): Operation
  // not permitted"); empty when it was.
  const std::string& isolation_note() const { return isolation_note_; }
  // The guard's pid (the namespace's init in kPidNamespace); 0 in kNone.
  int guard_pid() const { return guard_pid_; }
  // Why the guard shares trainrun's memory though its image was wanted; "" otherwise.
  const std::string& guard_note() const { return guard_note_; }

 private:
  PosixProcessSet() = default;
  Status StartGuard(Isolation isolation, GuardStart start);
  void ReapChildren(std::vector<ProcessEvent>* events);
  // Tells the guard to forget groups whose leader ended and that are empty now.
  void ForgetEmptyGroups();
  std::vector<int> NamespaceMembers() const;

  int epoll_fd_ = -1;
  int signal_fd_ = -1;
  int event_fd_ = -1;
  std::set<int> live_;  // pids spawned by this set and not yet reaped
  int orphans_reaped_ = 0;
  Isolation isolation_ = Isolation::kNone;
  std::string isolation_note_;
  int guard_pid_ = 0;
  int guard_fd_ = -1;  // write end of the guard's pipe
  bool guard_lost_ = false;
  void* guard_block_ = nullptr;  // the in-memory guard's stack and table
  std::string guard_note_;
  int outer_pidns_fd_ = -1;     // kPidNamespace: trainrun's own PID namespace
  int inner_pidns_fd_ = -1;     // kPidNamespace: the children's
  std::set<int> ended_groups_;  // kProcessGroups: leaders reaped, group maybe not empty
};

// What /proc says about `pid` (see ProcessState); state 0 when it is gone.
ProcessState ReadProcessState(int pid);

// The pid, as this process sees it, of the child of `parent` (a pid as this process
// sees it) whose pid in its own PID namespace is `pid_in_namespace`: how a pid that an
// MPI rank's wrapper reports from inside trainrun's PID namespace becomes one trainrun
// can signal. `pid_in_namespace` itself when `parent` has no such child (no namespace
// between them).
int PidOfChild(int parent, int pid_in_namespace);

// Runs argv to completion (no shell) in `cwd` with trainrun's environment and
// returns its stdout; stdin and stderr are /dev/null. The child starts like every
// other (its own process group, killed if trainrun dies, a clean signal mask). A
// program that cannot start is an error naming argv[0] and the step that failed;
// an exit other than 0 is one naming argv[0] and the exit. For short helper
// commands such as `git rev-parse`; it reaps its child itself, so it must not run
// while another thread waits in a PosixProcessSet.
Result<std::string> CaptureOutput(const std::vector<std::string>& argv, const std::string& cwd);

// Runs spec.argv to completion (no shell) with spec.env and spec.cwd, its stdout and
// stderr merged into one pipe and handed to `line` one line at a time (without the
// newline; a last line without one too), on the calling thread. spec's fds are
// ignored; stdin is /dev/null. The child starts like every other (its own process
// group, killed if trainrun dies). Once `cancel` (may be null) is canceled, the
// group gets SIGTERM and, 5 s later, SIGKILL, and the result is kCanceled naming
// argv[0]. Returns how the child ended (a non-zero exit is not an error), or the
// error that kept it from starting (naming argv[0]). It reaps only its own child,
// so it may run beside a PosixProcessSet that nobody waits on (Preparing).
Result<ExitStatus> RunToCompletion(const SpawnSpec& spec,
                                   const std::function<void(std::string_view)>& line,
                                   const CancelToken* cancel);

// Looks `program` up in the ':'-separated `path_list` like execvp. A name with a
// '/' is returned as is when it exists.
Result<std::string> FindExecutable(const std::string& program, const std::string& path_list);

// FindExecutable on this process's PATH: the full path of `name`, or "".
std::string FindOnPath(const std::string& name);

}  // namespace trainrun
