// Limits on what users and other programs hand trainrun: path lengths, as the
// kernel counts them. Checked where input enters (the job file, the command line) so
// a value past a limit is an error that names the field, not ENAMETOOLONG (or an
// exception) deep inside a later phase.
#pragma once

#include <cstddef>
#include <string_view>

#include "base/status.h"

namespace trainrun {

// PATH_MAX (4096) counts the terminating NUL: a path has at most 4095 bytes.
constexpr size_t kMaxPathBytes = 4095;
// NAME_MAX: one component (between two '/') has at most 255 bytes.
constexpr size_t kMaxNameBytes = 255;

// Ok when `path` has at most kMaxPathBytes bytes and no '/'-separated component
// longer than kMaxNameBytes. Otherwise kInvalidArgument with a message about the
// value alone ("is 5000 bytes long; a path may have at most 4095" or "component
// \"aaaa...\" is 300 bytes long; ..."); the caller adds the field and may change
// the code. URIs are checked the same way: their segments become file names.
Status CheckPathLength(std::string_view path);

}  // namespace trainrun
