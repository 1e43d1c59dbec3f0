// What a node that replaces a lost one (README "A replaced node rejoins") takes over
// from the trainruns it replaces, so that nothing their attempts wrote is lost from
// run history:
//
// clang-format off
//   the logs     this node's system log, each of its ranks' logs and metrics files
//                are seeded, before anything is appended to them, with the earlier
//                attempts' lines: from a run directory a lost trainrun left on this
//                host (kept aside as <run directory>.before-attempt<N>), or else
//                from what history holds (uploaded live, any store)
//   ./outputs    (and ./logs) of the kept-aside run directories go up at
//                Finalizing with this run's, never in place of a file of this run
//                (run_uploads.h, PlanKeptAsideUploads)
// clang-format on
//
// On another host a lost trainrun's files that were not uploaded (its outputs,
// and the log lines written since its last live upload) are gone. Internal to the
// launcher.
#pragma once

#include <string>
#include <vector>

#include "runtime/run/run_layout.h"
#include "runtime/store/store.h"

namespace trainrun {

// Where a lost trainrun's run directory `root` is kept aside when this node's first
// attempt is `attempt`: <root>.before-attempt<attempt>, as KeptAsideRunDirs finds it.
std::string KeptAsideRunDir(const std::string& root, int attempt);

// The run directories that lost trainruns of this node left on this host for
// `root` (<root>.before-attempt<N>), newest (highest N) first; none when there are
// none or their folder cannot be read.
std::vector<std::string> KeptAsideRunDirs(const std::string& root);

// What SeedEarlierAttempts() brought in.
struct SeededLogs {
  int files = 0;
  uint64_t bytes = 0;
  int from_kept_aside = 0;  // of `files`: copied from a kept-aside run directory
  // Files that could not be seeded, with why ("history: ..."); they start afresh.
  std::vector<std::string> failures;
};

// On a node whose first attempt is a later one (it replaces a lost node), before
// the system log and the ranks' logs are opened: writes into `layout` (whose
// folders exist) the system log of node `node_rank` and, for global ranks
// `first_rank` .. `first_rank + rank_count - 1`, their logs and metrics files as
// the earlier attempts left them. Each comes from the newest kept-aside run
// directory that has it when that copy is at least as long as history's (it then
// holds the lines written after the last live upload too), else from history:
// `history` (not owned; any backend) under `run_prefix` ("experiment/runId/").
// A file neither has is left out. Never fails: what cannot be read or written is
// in `failures`, and that file starts empty as before.
SeededLogs SeedEarlierAttempts(Store* history, const std::string& run_prefix,
                               const LocalRunLayout& layout, int node_rank, int first_rank,
                               int rank_count);

}  // namespace trainrun
