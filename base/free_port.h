// Picking a TCP port that is free now, for MASTER_PORT.
#pragma once

#include <string>

#include "base/status.h"

namespace trainrun {

// Binds port 0 on `address` (IPv4 dotted quad; "0.0.0.0" for every interface),
// reads the port the kernel chose, and closes the socket. Another process could take
// it before the ranks bind it; the kernel hands out ephemeral ports in a rotating
// order, which makes that unlikely.
Result<int> FindFreePort(const std::string& address = "0.0.0.0");

}  // namespace trainrun
