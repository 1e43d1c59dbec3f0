// The environment of each rank: the container's, the job file's, and the variables
// of the contract in README.md ("What each rank sees"), merged so that nothing a
// user set is overwritten silently.
//
// Precedence, highest first:
//   1. the job file's environment.environmentVariables (a warning when it sets one of
//      trainrun's per-rank identity variables such as RANK);
//   2. trainrun's identity variables (RANK, WORLD_SIZE, MASTER_PORT, TRAINRUN_*...):
//      a value inherited from the container is replaced, and a note says so;
//   3. the container's environment;
//   4. trainrun's defaults (CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS, PYTHONUNBUFFERED...),
//      which never replace a value the user set anywhere (a note says so).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace trainrun {

struct TrainrunVar {
  enum class Kind { kIdentity, kDefault };
  std::string name;
  std::string value;
  Kind kind = Kind::kDefault;
};

struct RankContext {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  int local_world_size = 1;
  int node_rank = 0;
  int node_count = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  std::string run_id;
  std::string experiment;
  std::string outputs_dir;  // absolute
  std::string logs_dir;     // absolute
  // Which start of the ranks this is (1, 2, ... : README "In-place restarts"), and
  // how many restarts the run allows.
  int attempt = 1;
  int max_restarts = 0;
  // Data reference name -> path or URI, and the extra variable name (may be empty).
  std::vector<std::pair<std::string, std::string>> data_paths;
  std::map<std::string, std::string> data_env_names;
};

// The contract's variables for one rank, before binding adds its own.
std::vector<TrainrunVar> RankVariables(const RankContext& context);

struct MergedEnvironment {
  std::vector<std::string> entries;   // "NAME=value", sorted by name
  std::vector<std::string> notes;     // decisions worth a line in the system log
  std::vector<std::string> warnings;  // things the user should look at
};

// Merges the three sources as described above. `container` holds "NAME=value"
// entries (environ).
MergedEnvironment MergeEnvironment(const std::vector<std::string>& container,
                                   const std::vector<std::pair<std::string, std::string>>& job,
                                   const std::vector<TrainrunVar>& trainrun);

// Makes a rank's environment (`env`, "NAME=value" entries as MergeEnvironment
// made it for attempt 1) that of attempt `attempt`: TRAINRUN_ATTEMPT and
// TORCHELASTIC_RESTART_COUNT get its values, except where the job file set them
// (`job`), whose value stays, as it did for attempt 1.
void SetAttemptVariables(int attempt, const std::vector<std::pair<std::string, std::string>>& job,
                         std::vector<std::string>* env);

// trainrun's own environment as "NAME=value" entries.
std::vector<std::string> CurrentEnvironment();

// "NAME=value" entries as a map; entries without a name are skipped, and of two
// entries for one name the later wins.
std::map<std::string, std::string> EnvironmentMap(const std::vector<std::string>& entries);

}  // namespace trainrun
