// The supervisor of an MPI job on one node. The head runs mpirun; every other
// node runs what mpirun's launch agent asks for (Open MPI's orted, through
// `trainrun rsh` and the head); the ranks themselves are started by mpirun or
// orted through `trainrun mpi-rank`, which reports to this node
// (mpi_rank_server.h).
//
// It keeps the Supervisor's contract (supervisor.h) and stops by the same
// StopPolicy (stop_policy.h): the first failed rank on this node is the root
// cause (on_rank_failed), a cancel, time limit or RequestStop stops everything
// here (mpirun, rsh sessions, the ranks' process groups) with SIGTERM, a grace
// period and SIGKILL, and Run returns a SupervisionResult with one entry per
// local rank. On the head, mpirun ending non-zero without a local rank failing
// is a failure of "rank -1" (mpirun).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/cluster/cluster_session.h"
#include "runtime/process/process.h"
#include "runtime/process/stop_policy.h"
#include "runtime/process/supervisor.h"

namespace trainrun {

constexpr int kMpirunRank = -1;  // mpirun's entry in failures and logs

class MpiSupervisor : public RshHandler {
 public:
  // Not owned: all three must outlive Run(). `sink` receives the output and end
  // of rsh sessions (may be null on the head). The rsh sessions' stdio are real
  // pipes, whatever `processes` is.
  MpiSupervisor(ProcessSet* processes, Reporter* reporter, SupervisorOptions options,
                RshSink* sink);
  ~MpiSupervisor() override;

  // The environment of the processes rsh sessions start (Open MPI's orted).
  void set_session_env(std::vector<std::string> env) { session_env_ = std::move(env); }

  // Runs until everything here ended: `mpirun` (head only, may be none) and the
  // ranks in `local_ranks` once they started.
  SupervisionResult Run(std::optional<SpawnSpec> mpirun, std::vector<int> local_ranks);

  // From other threads (the rank server's): a rank's program started as `pid`
  // (0 when its wrapper could not say), or ended.
  void RankStarted(int rank, int pid);
  void RankExited(int rank, const ExitStatus& status);
  void RequestStop(int exit_code, std::string reason);
  // RshHandler, from the control plane's thread.
  void Exec(uint32_t session, std::vector<std::string> argv) override;
  void Stdin(uint32_t session, std::string data) override;
  void Kill(uint32_t session) override;

 private:
  struct Session;
  struct Rank {
    int pid = 0;
    bool started = false;
    bool exited = false;
    TimePoint started_at{};
    size_t index = 0;  // into result_.ranks
  };
  struct Pending {  // what other threads hand the supervising thread
    std::vector<std::pair<uint32_t, std::vector<std::string>>> execs;
    std::vector<uint32_t> kills;
    std::vector<std::pair<int, int>> started;
    std::vector<std::pair<int, ExitStatus>> exited;
    std::optional<std::pair<int, std::string>> stop;
  };
  void Post(const std::function<void(Pending&)>& add);
  void Drain();
  void StartSession(uint32_t session, const std::vector<std::string>& argv);
  void EndSession(int pid, const ExitStatus& status);
  void OnRankExit(int rank, const ExitStatus& status);
  void Fail(int rank, int pid, const ExitStatus& status, const std::string& reason);
  // Carries out the stop the policy just began: records it, on_stop, the signal.
  void BeginStop();
  void SignalAll(int signal);
  void KillAll();
  // unkillable_timeout passed after SIGKILL: records what is left, stops waiting.
  void GiveUpOnUnkillable();
  bool Finished() const;

  ProcessSet* processes_;
  Reporter* reporter_;
  SupervisorOptions options_;
  RshSink* sink_;
  std::vector<std::string> session_env_;

  SupervisionResult result_;
  std::map<int, Rank> ranks_;
  int mpirun_pid_ = 0;
  bool mpirun_done_ = false;
  int sessions_seen_ = 0;
  std::map<int, std::unique_ptr<Session>> sessions_;  // by pid
  StopPolicy policy_;

  std::mutex mu_;
  Pending pending_;                             // guarded by mu_
  std::map<uint32_t, Session*> session_by_id_;  // guarded by mu_
  // Input for a session whose Exec has not been carried out yet: it would be lost
  // otherwise (an agent's end of input follows its Exec at once). Guarded by mu_.
  std::map<uint32_t, std::deque<std::string>> early_input_;
};

}  // namespace trainrun
