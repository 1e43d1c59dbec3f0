#include "runtime/mpi/mpi_launch.h"

#include <unistd.h>

#include <map>
#include <set>

#include <fmt/format.h>

#include "runtime/mpi/mpi_rank_server.h"

namespace trainrun {

std::string MpiHostfile(const JobAssignment& job) {
  std::string text;
  for (const NodeSlot& node : job.nodes) {
    std::string host = job.nodes.size() == 1 ? "localhost" : node.address;
    text += fmt::format("{} slots={} max_slots={}\n", host, node.process_count, node.process_count);
  }
  return text;
}

std::vector<std::string> MpirunArgv(const JobAssignment& job, const MpirunOptions& options) {
  std::vector<std::string> argv = {
      options.mpirun, "--hostfile", options.hostfile, "-np", std::to_string(job.world_size),
      "--map-by", "slot", "--bind-to", "none",
      // trainrun's hostfile and launch agent, whatever
      // allocation Open MPI finds in the environment: under
      // Slurm its ras and plm would take SLURM_JOB_NODELIST and
      // srun, and reject the hostfile's addresses.
      "--mca", "plm", "rsh", "--mca", "ras", kMpiIgnoredAllocators, "--mca", "plm_rsh_agent",
      options.trainrun + " rsh", "--mca", "plm_rsh_no_tree_spawn", "1",
      // orted stays attached to its agent session instead of
      // daemonizing: it lives exactly as long as the session.
      "--mca", "orte_leave_session_attached", "1"};
  // Restrict Open MPI's TCP traffic to the interface the nodes reach the head
  // by, when every node names it the same.
  std::set<std::string> interfaces;
  for (const NodeSlot& node : job.nodes) interfaces.insert(node.interface);
  if (job.nodes.size() > 1 && interfaces.size() == 1 && !interfaces.begin()->empty()) {
    for (const char* param : {"btl_tcp_if_include", "oob_tcp_if_include"}) {
      argv.insert(argv.end(), {"--mca", param, *interfaces.begin()});
    }
  }
  argv.insert(argv.end(), {options.trainrun, "mpi-rank", "--"});
  argv.insert(argv.end(), options.program.begin(), options.program.end());
  return argv;
}

std::vector<std::string> MpiLauncherEnv(std::vector<std::string> base,
                                        const std::string& rank_socket,
                                        const std::string& rsh_key_hex, const std::string& rsh_head,
                                        int attempt) {
  std::map<std::string, std::string> set = {{kMpiRankSocketVariable, rank_socket}};
  if (!rsh_key_hex.empty()) {
    set[kRshKeyVariable] = rsh_key_hex;
    set[kRshHeadVariable] = rsh_head;
    set[kRshAttemptVariable] = std::to_string(attempt);
  }
  if (geteuid() == 0) {
    set["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
    set["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
  }
  std::erase_if(base, [&](const std::string& entry) {
    return set.count(entry.substr(0, entry.find('='))) != 0;
  });
  for (const auto& [name, value] : set) base.push_back(name + "=" + value);
  return base;
}

}  // namespace trainrun
