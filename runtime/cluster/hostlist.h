// Slurm's hostlist syntax: "gpu-[001-004,010],login1" -> gpu-001 ... gpu-004,
// gpu-010, login1.
//
// A list is items separated by commas outside brackets. An item is text with any
// number of bracket groups, each a comma-separated list of numbers and ranges
// ("1-3", "001-004"); the item expands to the cartesian product, leftmost group
// slowest ("r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2). A range keeps the zero padding of
// its lower bound ("[08-10]" -> 08 09 10). Hosts keep the order they are listed in.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace trainrun {

// More hosts than this in one list is taken as a mistake (a typo in a range),
// not expanded.
constexpr size_t kMaxHostlistHosts = 1 << 20;
// Nor a host name longer than a DNS name may be, or an expansion past this many
// bytes (a short list can ask for a million long names).
constexpr size_t kMaxHostNameLength = 255;
constexpr size_t kMaxHostlistBytes = 64 << 20;

// Expands `list`. Errors (kInvalidArgument) quote the list and say what is
// wrong: an unbalanced bracket, an empty item, a range that is not digits or
// runs backwards, a name past kMaxHostNameLength, or an expansion past
// kMaxHostlistHosts or kMaxHostlistBytes.
Result<std::vector<std::string>> ExpandHostlist(std::string_view list);

}  // namespace trainrun
