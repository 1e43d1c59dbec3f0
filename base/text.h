// ASCII text helpers shared by the parsers (headers, environment values, job files).
#pragma once

#include <string>
#include <string_view>

namespace trainrun {

// Lower-case ASCII copy.
std::string ToLower(std::string_view text);

// `text` without leading and trailing white space (std::isspace).
std::string_view TrimSpace(std::string_view text);

}  // namespace trainrun
