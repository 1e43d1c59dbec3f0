// Run ids for runs whose job file names none: readable, unique and sortable by
// time, e.g. "mnist_20261121_235226_4f1c2a".
#pragma once

#include <string>

#include "base/clock.h"

namespace trainrun {

// "<experiment (first 40 characters)>_<UTC yyyymmdd>_<hhmmss>_<6 random hex digits>".
std::string GenerateRunId(const std::string& experiment, WallTime now);

}  // namespace trainrun
