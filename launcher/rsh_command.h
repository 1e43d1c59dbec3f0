// `trainrun rsh HOST COMMAND...`: Open MPI's remote launch agent
// (plm_rsh_agent) inside a trainrun MPI job. Instead of ssh it asks the head's
// trainrun, over the authenticated control plane, to run COMMAND on HOST's
// trainrun, relays stdin, stdout and stderr for as long as the command lives,
// and exits with its exit code (255 when the job's trainrun cannot be reached,
// as ssh does). It dies with the mpirun that started it (PR_SET_PDEATHSIG), and
// says the attempt of the ranks it is for: the head refuses an agent of an
// attempt that was stopped.
//
// It needs TRAINRUN_RSH_HEAD and TRAINRUN_RSH_KEY, which trainrun gives mpirun,
// with TRAINRUN_RSH_ATTEMPT.
#pragma once

#include <string>
#include <vector>

#include "runtime/report/console.h"

namespace trainrun {

int RshCommand(const std::string& host, const std::vector<std::string>& command, Console* err);

}  // namespace trainrun
