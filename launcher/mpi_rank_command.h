// `trainrun mpi-rank -- PROGRAM...`: what mpirun and orted start for each rank
// of a trainrun MPI job. It asks this node's trainrun
// (TRAINRUN_MPI_RANK_SOCKET) for the rank's planned launch (environment,
// working directory, binding, log pipes), runs it with Open MPI's own variables
// (OMPI_*, PMIX_*, ...) added, forwards SIGTERM, SIGINT and SIGHUP to it, tells
// trainrun when it started and how it ended, and ends the same way.
#pragma once

#include <string>
#include <vector>

#include "runtime/report/console.h"

namespace trainrun {

int MpiRankCommand(const std::vector<std::string>& program, Console* err);

}  // namespace trainrun
