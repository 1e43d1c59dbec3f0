#include "base/env.h"

#include <cstdlib>

namespace trainrun {

EnvLookup ProcessEnv() {
  return [](const char* name) -> const char* { return std::getenv(name); };
}

std::string EnvString(const EnvLookup& env, const char* name) {
  const char* value = env(name);
  return value == nullptr ? "" : value;
}

}  // namespace trainrun
