#include "launcher/mpi_rank_command.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <map>

#include <fmt/format.h>

#include "runtime/mpi/mpi_rank_server.h"
#include "runtime/process/process_posix.h"
#include "runtime/process/rank_env.h"

namespace trainrun {
namespace {

constexpr int kWrapperFailed = 127;
constexpr const char* kMpiPrefixes[] = {"OMPI_", "PMIX_", "OPAL_", "ORTE_", "PMI_"};

bool IsMpiVariable(const std::string& name) {
  for (const char* prefix : kMpiPrefixes) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

}  // namespace

int MpiRankCommand(const std::vector<std::string>& program, Console* err) {
  // Gone with the orted or mpirun that started us.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto fail = [&](const std::string& message) {
    err->Write(fmt::format("trainrun mpi-rank: {}\n", message), false);
    err->Flush(std::chrono::seconds(2));
    return kWrapperFailed;
  };
  const char* socket = getenv(kMpiRankSocketVariable);
  const char* rank_text = getenv("OMPI_COMM_WORLD_RANK");
  if (rank_text == nullptr) rank_text = getenv("PMIX_RANK");
  if (socket == nullptr || rank_text == nullptr) {
    return fail(
        fmt::format("{} or OMPI_COMM_WORLD_RANK is not set: trainrun mpi-rank runs a rank "
                    "of a trainrun MPI job under mpirun ({})",
                    kMpiRankSocketVariable, fmt::join(program, " ")));
  }
  const int rank = std::atoi(rank_text);
  Result<MpiRankLaunch> launch = FetchMpiRankLaunch(socket, rank);
  if (!launch.ok()) return fail(fmt::format("rank {}: {}", rank, launch.status().message()));

  // The planned environment, plus what Open MPI gave this process to find its
  // job.
  std::map<std::string, std::string> env = EnvironmentMap(launch->spec.env);
  for (const auto& [name, value] : EnvironmentMap(CurrentEnvironment())) {
    if (IsMpiVariable(name)) env[name] = value;
  }
  launch->spec.env.clear();
  for (const auto& [name, value] : env) launch->spec.env.push_back(name + "=" + value);
  launch->spec.stdin_fd = STDIN_FILENO;

  // Inside trainrun's PID namespace already where it has one (mpirun and orted are
  // there, so every rank of the node is); a guard of our own still takes the
  // program's process group with us, wherever we are.
  Result<std::unique_ptr<PosixProcessSet>> processes =
      PosixProcessSet::Create(Isolation::kProcessGroups);
  if (!processes.ok()) return fail(processes.status().message());
  Result<int> pid = (*processes)->Spawn(launch->spec);
  ExitStatus status;
  if (!pid.ok()) {
    status = ExitStatus::CouldNotStart(pid.status());
    std::string message =
        fmt::format("trainrun mpi-rank: rank {}: {}\n", rank, pid.status().message());
    ssize_t ignored = write(launch->spec.stderr_fd, message.data(), message.size());
    (void)ignored;
  } else {
    SendRankMessage(launch->socket_fd, {{"started", *pid}}).IgnoreError();
    bool running = true;
    while (running) {
      for (const ProcessEvent& event : (*processes)->Wait(std::nullopt)) {
        if (event.kind == ProcessEvent::Kind::kSignal) {
          (*processes)->SignalGroup(*pid, event.signal).IgnoreError();
        } else if (event.kind == ProcessEvent::Kind::kExited && event.pid == *pid) {
          status = event.status;
          running = false;
        }
      }
    }
  }
  SendRankMessage(launch->socket_fd, {{"exitCode", status.code}, {"signal", status.signal}})
      .IgnoreError();
  close(launch->socket_fd);
  if (status.signal != 0) {
    // End the way the program did, so mpirun reports the same.
    signal(status.signal, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, status.signal);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    raise(status.signal);
  }
  return status.code;
}

}  // namespace trainrun
