#include "launcher/mpi_run.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "base/fs_util.h"
#include "launcher/exit_codes.h"
#include "runtime/mpi/mpi_launch.h"
#include "runtime/mpi/mpi_rank_server.h"
#include "runtime/mpi/mpi_supervisor.h"

namespace trainrun {
namespace {

std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "trainrun" : self.string();
}

SupervisionResult Failed(const Status& status) {
  SupervisionResult result;
  result.outcome = RunOutcome::kRankFailed;
  result.exit_code = kExitInternal;
  result.stop_reason = status.message();
  return result;
}

}  // namespace

SupervisionResult RunMpi(MpiRunInputs in) {
  // The wrappers' socket lives in a private folder: the run directory's path
  // may be longer than a unix socket path can be.
  std::error_code ec;
  std::filesystem::path temp = std::filesystem::temp_directory_path(ec);
  std::string dir_pattern = ((ec ? "/tmp" : temp) / "trainrun-mpi-XXXXXX").string();
  if (mkdtemp(dir_pattern.data()) == nullptr) return Failed(ErrnoStatus(errno, "mkdtemp"));
  const std::string dir = dir_pattern;
  const std::string socket = dir + "/ranks.sock";

  MpiSupervisor supervisor(in.processes, in.reporter, in.supervision,
                           in.session != nullptr ? in.session->rsh_sink() : nullptr);
  std::map<int, SpawnSpec> specs;
  std::vector<int> ranks;
  for (const RankLaunch& launch : in.launches) {
    specs[launch.rank] = launch.spec;
    ranks.push_back(launch.rank);
  }
  MpiRankEvents events;
  events.started = [&](int rank, int pid) { supervisor.RankStarted(rank, pid); };
  events.exited = [&](int rank, const ExitStatus& status) { supervisor.RankExited(rank, status); };
  events.warning = [&](const std::string& warning) { in.reporter->Warning(warning); };
  Result<std::unique_ptr<MpiRankServer>> server = MpiRankServer::Start(socket, specs, events);
  if (!server.ok()) {
    std::filesystem::remove_all(dir, ec);
    return Failed(server.status());
  }

  std::vector<std::string> env =
      MpiLauncherEnv(in.base_env, socket, in.rsh_key_hex,
                     fmt::format("127.0.0.1:{}", in.control_port), in.attempt);
  supervisor.set_session_env(env);
  if (in.session != nullptr) {
    in.session->SetRshHandler(&supervisor);
    in.session->SetStopHandler([&supervisor](const StopNotice& stop) {
      supervisor.RequestStop(stop.exit_code, stop.reason);
    });
  }
  std::optional<SpawnSpec> mpirun;
  if (in.node_rank == 0) {
    // The nodes as they are now: one that replaced a lost node since the plan was
    // made (README "A replaced node rejoins") may be at another address.
    JobAssignment nodes = *in.assignment;
    if (in.session != nullptr) {
      if (std::optional<JobAssignment> current = in.session->CurrentAssignment()) nodes = *current;
    }
    const std::string hostfile = dir + "/hostfile";
    Status written = WriteFileAtomic(hostfile, MpiHostfile(nodes));
    if (!written.ok()) in.reporter->Warning(written.message());
    MpirunOptions options;
    options.hostfile = hostfile;
    options.trainrun = SelfExecutable();
    options.program = in.launches.empty() ? std::vector<std::string>{} : in.launches[0].spec.argv;
    SpawnSpec spec;
    spec.argv = MpirunArgv(nodes, options);
    spec.env = env;
    spec.cwd = in.launches.empty() ? "" : in.launches[0].spec.cwd;
    spec.stdout_fd = in.mpirun_stdout_fd;
    spec.stderr_fd = in.mpirun_stderr_fd;
    in.reporter->Info(fmt::format("MPI launch: {}", fmt::join(spec.argv, " ")));
    mpirun = spec;
  }
  SupervisionResult result = supervisor.Run(mpirun, ranks);
  if (in.session != nullptr) {
    in.session->SetRshHandler(nullptr);
    in.session->SetStopHandler({});
  }
  server->reset();
  std::filesystem::remove_all(dir, ec);
  return result;
}

}  // namespace trainrun
