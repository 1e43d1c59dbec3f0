// The process environment behind a seam, so code that reads credentials and
// settings is tested with a map instead of setenv.
#pragma once

#include <functional>
#include <string>

namespace trainrun {

// Looks up an environment variable; nullptr when unset. Tests pass a map.
using EnvLookup = std::function<const char*(const char*)>;
// getenv.
EnvLookup ProcessEnv();
// The variable's value, or "" when unset.
std::string EnvString(const EnvLookup& env, const char* name);

}  // namespace trainrun
