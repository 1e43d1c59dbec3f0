#include "runtime/mpi/mpi_supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <deque>

#include <fmt/format.h>

namespace trainrun {
namespace {

// How long a finished session's output may keep trickling in.
constexpr auto kRelayDrain = std::chrono::seconds(2);

}  // namespace

// An rsh session: a process (Open MPI's orted) whose stdio is relayed to the
// agent through the head.
struct MpiSupervisor::Session {
  uint32_t id = 0;
  int pid = 0;
  int stdin_w = -1, stdout_r = -1, stderr_r = -1;
  int child_fds[3] = {-1, -1, -1};
  int wake_fd = -1;
  std::thread relay;
  std::mutex mu;
  std::deque<std::string> stdin_queue;  // guarded by mu; "" = end of input
  bool stop_relay = false;              // guarded by mu
  TimePoint relay_deadline{};           // guarded by mu

  ~Session() {
    for (int fd :
         {stdin_w, stdout_r, stderr_r, wake_fd, child_fds[0], child_fds[1], child_fds[2]}) {
      if (fd >= 0) close(fd);
    }
  }
  void Wake() {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd, &one, sizeof(one));
    (void)ignored;
  }
  void Relay(RshSink* sink) {
    char buffer[65536];
    std::string pending;  // stdin bytes not yet written
    bool stdin_eof = false;
    while (true) {
      {
        std::lock_guard lock(mu);
        while (!stdin_queue.empty() && !stdin_eof) {
          if (stdin_queue.front().empty()) stdin_eof = true;
          pending += stdin_queue.front();
          stdin_queue.pop_front();
        }
        if (stop_relay && SystemClock()->Now() >= relay_deadline) return;
      }
      if (stdin_eof && pending.empty() && stdin_w >= 0) {
        close(stdin_w);
        stdin_w = -1;
      }
      if (stdout_r < 0 && stderr_r < 0) return;
      pollfd fds[4] = {{stdout_r, POLLIN, 0},
                       {stderr_r, POLLIN, 0},
                       {wake_fd, POLLIN, 0},
                       {pending.empty() ? -1 : stdin_w, POLLOUT, 0}};
      int n = poll(fds, 4, 200);
      if (n < 0 && errno != EINTR) return;
      if (fds[2].revents & POLLIN) {
        uint64_t count;
        while (read(wake_fd, &count, sizeof(count)) > 0) {
        }
      }
      if (fds[3].revents & (POLLOUT | POLLERR | POLLHUP)) {
        ssize_t w = write(stdin_w, pending.data(), pending.size());
        if (w > 0) pending.erase(0, static_cast<size_t>(w));
        if (w < 0 && errno != EAGAIN && errno != EINTR) pending.clear();
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        ssize_t got = read(fds[i].fd, buffer, sizeof(buffer));
        if (got > 0) {
          if (sink) sink->Output(id, i + 1, std::string(buffer, static_cast<size_t>(got)));
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          int& fd = i == 0 ? stdout_r : stderr_r;
          close(fd);
          fd = -1;
        }
      }
    }
  }
};

MpiSupervisor::MpiSupervisor(ProcessSet* processes, Reporter* reporter, SupervisorOptions options,
                             RshSink* sink)
    : processes_(processes),
      reporter_(reporter),
      options_(std::move(options)),
      sink_(sink),
      policy_(processes->clock(), options_.grace_period, options_.max_run_duration,
              options_.unkillable_timeout) {}

MpiSupervisor::~MpiSupervisor() {
  for (auto& [pid, session] : sessions_) {
    {
      std::lock_guard lock(session->mu);
      session->stop_relay = true;
    }
    session->Wake();
    if (session->relay.joinable()) session->relay.join();
  }
}

void MpiSupervisor::Post(const std::function<void(Pending&)>& add) {
  {
    std::lock_guard lock(mu_);
    add(pending_);
  }
  processes_->Interrupt();
}

void MpiSupervisor::RankStarted(int rank, int pid) {
  Post([&](Pending& p) { p.started.emplace_back(rank, pid); });
}
void MpiSupervisor::RankExited(int rank, const ExitStatus& status) {
  Post([&](Pending& p) { p.exited.emplace_back(rank, status); });
}
void MpiSupervisor::RequestStop(int exit_code, std::string reason) {
  Post([&](Pending& p) {
    if (!p.stop) p.stop.emplace(exit_code, std::move(reason));
  });
}
void MpiSupervisor::Exec(uint32_t session, std::vector<std::string> argv) {
  Post([&](Pending& p) { p.execs.emplace_back(session, std::move(argv)); });
}
void MpiSupervisor::Kill(uint32_t session) {
  Post([&](Pending& p) { p.kills.push_back(session); });
}
void MpiSupervisor::Stdin(uint32_t session, std::string data) {
  std::lock_guard lock(mu_);
  auto it = session_by_id_.find(session);
  if (it == session_by_id_.end()) {
    early_input_[session].push_back(std::move(data));
    return;
  }
  {
    std::lock_guard session_lock(it->second->mu);
    it->second->stdin_queue.push_back(std::move(data));
  }
  it->second->Wake();
}

void MpiSupervisor::StartSession(uint32_t id, const std::vector<std::string>& argv) {
  auto session = std::make_unique<Session>();
  session->id = id;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    if (sink_) sink_->Exited(id, 255, "pipe2 failed");
    return;
  }
  session->child_fds[0] = in[0];
  session->stdin_w = in[1];
  session->stdout_r = out[0];
  session->child_fds[1] = out[1];
  session->stderr_r = err[0];
  session->child_fds[2] = err[1];
  fcntl(session->stdin_w, F_SETFL, O_NONBLOCK);
  session->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // Like sshd: the agent's words run through the shell.
  std::string command;
  for (const std::string& word : argv) command += (command.empty() ? "" : " ") + word;
  SpawnSpec spec;
  spec.argv = {"/bin/sh", "-c", command};
  spec.env = session_env_;
  spec.stdin_fd = in[0];
  spec.stdout_fd = out[1];
  spec.stderr_fd = err[1];
  Result<int> pid = processes_->Spawn(spec);
  for (int& fd : session->child_fds) {
    close(fd);
    fd = -1;
  }
  if (!pid.ok()) {
    reporter_->Warning(fmt::format("rsh session {}: {}", id, pid.status().message()));
    if (sink_) sink_->Exited(id, 127, pid.status().message());
    return;
  }
  session->pid = *pid;
  ++sessions_seen_;
  reporter_->Info(fmt::format("rsh session {}: started pid {}: {}", id, *pid, command));
  Session* raw = session.get();
  session->relay = std::thread([raw, sink = sink_] { raw->Relay(sink); });
  {
    std::lock_guard lock(mu_);
    session_by_id_[id] = raw;
    // Input that came before: first in the queue, since later input comes under mu_.
    auto early = early_input_.find(id);
    if (early != early_input_.end()) {
      std::lock_guard session_lock(raw->mu);
      for (std::string& data : early->second) raw->stdin_queue.push_back(std::move(data));
      early_input_.erase(early);
    }
  }
  raw->Wake();
  sessions_[*pid] = std::move(session);
  if (policy_.stopping()) processes_->SignalGroup(*pid, policy_.LateStarterSignal()).IgnoreError();
}

void MpiSupervisor::EndSession(int pid, const ExitStatus& status) {
  auto it = sessions_.find(pid);
  if (it == sessions_.end()) return;
  Session& session = *it->second;
  {
    std::lock_guard lock(session.mu);
    session.stop_relay = true;
    session.relay_deadline = SystemClock()->Now() + kRelayDrain;
  }
  session.Wake();
  if (session.relay.joinable()) session.relay.join();
  reporter_->Info(
      fmt::format("rsh session {}: pid {} ended with {}", session.id, pid, status.Describe()));
  if (sink_) sink_->Exited(session.id, status.ToExitCode(), "");
  {
    std::lock_guard lock(mu_);
    session_by_id_.erase(session.id);
  }
  sessions_.erase(it);
}

void MpiSupervisor::Fail(int rank, int pid, const ExitStatus& status, const std::string& reason) {
  RankFailure failure;
  failure.rank = rank;
  failure.pid = pid;
  failure.status = status;
  failure.reason = reason;
  failure.hint = FailureHint(status);
  result_.failure = failure;
  if (options_.on_rank_failed) options_.on_rank_failed(failure);
  const std::string why =
      rank == kMpirunRank ? "mpirun " + reason : fmt::format("rank {} {}", rank, reason);
  if (policy_.RankFailed(status.ToExitCode(), why)) BeginStop();
}

void MpiSupervisor::OnRankExit(int rank, const ExitStatus& status) {
  auto it = ranks_.find(rank);
  if (it == ranks_.end() || it->second.exited) return;
  Rank& r = it->second;
  r.exited = true;
  RankResult& result = result_.ranks[r.index];
  result.status = status;
  result.stopped_by_trainrun = policy_.stopping();
  if (r.started) result.seconds = ToSeconds(processes_->clock()->Now() - r.started_at);
  reporter_->RankExited(rank, status, result.stopped_by_trainrun);
  if (status.success() || policy_.stopping()) return;
  Fail(rank, r.pid, status, status.HowItEnded());
}

void MpiSupervisor::SignalAll(int signal) {
  if (mpirun_pid_ > 0 && !mpirun_done_) processes_->SignalGroup(mpirun_pid_, signal).IgnoreError();
  for (auto& [pid, session] : sessions_) processes_->SignalGroup(pid, signal).IgnoreError();
  for (auto& [rank, r] : ranks_) {
    if (r.started && !r.exited && r.pid > 1) processes_->SignalGroup(r.pid, signal).IgnoreError();
  }
}

void MpiSupervisor::BeginStop() {
  const StopOrder& order = policy_.order();
  RecordStop(order, options_, &result_);
  reporter_->Info(
      fmt::format("stopping the MPI job on this node with {} ({}); SIGKILL after {:.0f} s",
                  SignalName(order.signal), order.reason, ToSeconds(policy_.grace_period())));
  SignalAll(order.signal);
}

void MpiSupervisor::KillAll() {
  result_.killed_after_grace = true;
  SignalAll(SIGKILL);
  // Ranks whose wrapper cannot report any more count as killed.
  for (auto& [rank, r] : ranks_) {
    if (r.started && !r.exited && r.pid <= 1) {
      ExitStatus killed;
      killed.signal = SIGKILL;
      OnRankExit(rank, killed);
    }
  }
}

void MpiSupervisor::GiveUpOnUnkillable() {
  for (auto& [rank, r] : ranks_) {
    if (!r.started || r.exited) continue;
    r.exited = true;
    RecordUnkillable(r.index, r.pid, processes_, reporter_, policy_.unkillable_timeout(), &result_);
  }
  ExitStatus killed;
  killed.signal = SIGKILL;
  if (mpirun_pid_ > 0 && !mpirun_done_) {
    mpirun_done_ = true;
    reporter_->Warning(
        fmt::format("mpirun (pid {}) is unkillable: still there {:.0f} s after "
                    "SIGKILL; trainrun stops waiting for it",
                    mpirun_pid_, ToSeconds(policy_.unkillable_timeout())));
  }
  while (!sessions_.empty()) {
    const int pid = sessions_.begin()->first;
    reporter_->Warning(fmt::format(
        "rsh session pid {} is unkillable: still there after SIGKILL; trainrun stops waiting",
        pid));
    EndSession(pid, killed);
  }
  if (result_.exit_code == 0) result_.exit_code = kExitCodeUnkillable;
}

void MpiSupervisor::Drain() {
  Pending work;
  {
    std::lock_guard lock(mu_);
    std::swap(work, pending_);
  }
  for (auto& [rank, pid] : work.started) {
    auto it = ranks_.find(rank);
    if (it == ranks_.end() || it->second.started) continue;
    it->second.started = true;
    it->second.pid = pid;
    it->second.started_at = processes_->clock()->Now();
    result_.ranks[it->second.index].started = true;
    result_.ranks[it->second.index].pid = pid;
    reporter_->RankStarted(rank, pid);
    if (policy_.stopping() && pid > 1)
      processes_->SignalGroup(pid, policy_.LateStarterSignal()).IgnoreError();
  }
  for (auto& [rank, status] : work.exited) OnRankExit(rank, status);
  for (auto& [id, argv] : work.execs) {
    if (policy_.stopping()) {
      if (sink_) sink_->Exited(id, 255, "the job is stopping");
    } else {
      StartSession(id, argv);
    }
    std::lock_guard lock(mu_);
    if (session_by_id_.count(id) == 0) early_input_.erase(id);  // it did not start
  }
  for (uint32_t id : work.kills) {
    for (auto& [pid, session] : sessions_) {
      if (session->id == id) processes_->SignalGroup(pid, SIGTERM).IgnoreError();
    }
  }
  if (work.stop && policy_.Requested(work.stop->first, work.stop->second)) BeginStop();
}

bool MpiSupervisor::Finished() const {
  if (mpirun_pid_ > 0 && !mpirun_done_) return false;
  if (!sessions_.empty()) return false;
  for (const auto& [rank, r] : ranks_) {
    if (r.started && !r.exited) return false;
  }
  return mpirun_pid_ > 0 || sessions_seen_ > 0 || policy_.stopping();
}

SupervisionResult MpiSupervisor::Run(std::optional<SpawnSpec> mpirun,
                                     std::vector<int> local_ranks) {
  policy_.Start();
  for (int rank : local_ranks) {
    RankResult r;
    r.rank = rank;
    ranks_[rank].index = result_.ranks.size();
    result_.ranks.push_back(r);
  }
  if (mpirun) {
    Result<int> pid = processes_->Spawn(*mpirun);
    if (!pid.ok()) {
      const ExitStatus status = ExitStatus::CouldNotStart(pid.status());
      reporter_->Error(fmt::format("mpirun could not start: {}", pid.status().message()));
      Fail(kMpirunRank, 0, status, "could not start: " + pid.status().message());
      return result_;
    }
    mpirun_pid_ = *pid;
    reporter_->Info(fmt::format("mpirun started (pid {})", *pid));
  }
  bool rank_leftovers_noted = false;
  while (!Finished()) {
    for (const ProcessEvent& event : processes_->Wait(policy_.WaitDeadline())) {
      if (event.kind == ProcessEvent::Kind::kInterrupt) continue;
      if (event.kind == ProcessEvent::Kind::kSignal) {
        switch (policy_.OnSignal(event.signal)) {
          case StopPolicy::SignalAction::kIgnore: break;
          case StopPolicy::SignalAction::kStop: BeginStop(); break;
          case StopPolicy::SignalAction::kSameStop:
            reporter_->Info(
                fmt::format("{} within {} s of the stop: the same stop, the grace "
                            "period goes on",
                            SignalName(event.signal), kSameStopWindow.count()));
            break;
          case StopPolicy::SignalAction::kKillNow:
            reporter_->Warning(
                fmt::format("{} again while stopping: killing now", SignalName(event.signal)));
            KillAll();
            break;
        }
        continue;
      }
      if (event.pid == mpirun_pid_) {
        mpirun_done_ = true;
        reporter_->Info(fmt::format("mpirun ended with {}", event.status.Describe()));
        if (!event.status.success() && !policy_.stopping()) {
          Fail(kMpirunRank, event.pid, event.status, event.status.HowItEnded());
        }
      } else if (sessions_.count(event.pid) != 0) {
        EndSession(event.pid, event.status);
      } else if (options_.on_helper_exit) {
        options_.on_helper_exit(event.pid, event.status);
      }
    }
    Drain();
    if (policy_.CheckTimeout()) BeginStop();
    // Ranks left behind once mpirun (or every orted) is gone are stopped too.
    bool launcher_gone = mpirun_pid_ > 0 ? mpirun_done_ : (sessions_seen_ > 0 && sessions_.empty());
    if (launcher_gone && !policy_.stopping() && !rank_leftovers_noted) {
      for (const auto& [rank, r] : ranks_) {
        if (r.started && !r.exited && !rank_leftovers_noted) {
          rank_leftovers_noted = true;
          if (policy_.Leftovers(
                  fmt::format("rank {} still ran after its MPI launcher ended", rank)))
            BeginStop();
        }
      }
    }
    if (policy_.KillDue()) {
      reporter_->Warning(
          "MPI processes still running after the grace period; sending "
          "SIGKILL");
      KillAll();
    }
    if (policy_.UnkillableDue()) GiveUpOnUnkillable();
  }
  for (auto& [rank, r] : ranks_) {
    if (r.started && r.pid > 1) processes_->SignalGroup(r.pid, SIGKILL).IgnoreError();
  }
  return result_;
}

}  // namespace trainrun
