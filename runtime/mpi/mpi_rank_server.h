// How a node's trainrun hands each MPI rank its launch: mpirun (or the node's
// orted) starts `trainrun mpi-rank -- PROGRAM...` for every rank; that wrapper
// connects to this server's unix socket (TRAINRUN_MPI_RANK_SOCKET), says which
// rank it is (OMPI_COMM_WORLD_RANK), and gets back the rank's environment, working
// directory and binding as planned by this node's trainrun, with the write ends of
// the rank's log pipes (SCM_RIGHTS). It reports the program's pid once started
// and its exit status when it ends, so per-rank logs, binding and fail-fast work
// for MPI jobs as they do for directly launched ranks.
//
// Messages are single lines of JSON, at most kMaxRankMessage bytes:
// clang-format off
//   wrapper -> trainrun  {"rank": R, "pid": wrapper pid}
//   trainrun -> wrapper  {"argv", "env", "cwd", "cpus", "memoryNodes"} + 2 fds, or {"error"}
//   wrapper -> trainrun  {"started": program pid}
//   wrapper -> trainrun  {"exitCode": c, "signal": s}
// clang-format on
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/process/process.h"

namespace trainrun {

constexpr size_t kMaxRankMessage = 4 << 20;
constexpr const char* kMpiRankSocketVariable = "TRAINRUN_MPI_RANK_SOCKET";

struct MpiRankEvents {
  // On the server's thread.
  std::function<void(int rank, int pid)> started;
  // `status` as the wrapper saw it; a wrapper that vanished without saying is
  // reported as killed by SIGKILL.
  std::function<void(int rank, const ExitStatus& status)> exited;
  std::function<void(const std::string& warning)> warning;
};

class MpiRankServer {
 public:
  // Listens on `socket_path` (mode 0600) for the ranks in `launches` (global rank
  // -> spec; the spec's stdout_fd/stderr_fd are sent to the wrapper). Starts the
  // thread.
  static Result<std::unique_ptr<MpiRankServer>> Start(const std::string& socket_path,
                                                      std::map<int, SpawnSpec> launches,
                                                      MpiRankEvents events);
  ~MpiRankServer();

 private:
  struct Client;
  MpiRankServer() = default;
  void Loop();
  void OnLine(Client& client, const std::string& line);

  std::string path_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::map<int, SpawnSpec> launches_;
  std::map<int, bool> handed_out_;
  MpiRankEvents events_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// The wrapper's side: connects to `socket_path`, sends the hello, and receives
// the spec and the two fds.
struct MpiRankLaunch {
  SpawnSpec spec;  // stdout_fd / stderr_fd are the received fds
  int socket_fd = -1;
};
Result<MpiRankLaunch> FetchMpiRankLaunch(const std::string& socket_path, int rank);
// Sends one JSON line on the wrapper's socket.
Status SendRankMessage(int fd, const nlohmann::json& message);

}  // namespace trainrun
