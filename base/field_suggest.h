// "Did you mean ...?" for misspelt field names, flags and values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace trainrun {

// Edit distance (insertions, deletions, substitutions, transpositions of
// neighbours), compared case-insensitively.
size_t EditDistance(std::string_view a, std::string_view b);

// The known name closest to `given`, or "" when none is close enough to be a
// plausible typo (distance at most a third of the name's length, and at least 1).
std::string NearestName(std::string_view given, const std::vector<std::string>& known);

// How an error message names a JSON value's type: "a string", "an integer", "null", ...
// ("must be an object, got an array").
std::string JsonTypeName(const nlohmann::json& value);

// `name` as one reference token of a JSON pointer (RFC 6901): "~" as "~0", "/" as "~1".
std::string JsonPointerToken(std::string_view name);

}  // namespace trainrun
