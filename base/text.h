// ASCII text helpers shared by the parsers (headers, environment values, job files).
#pragma once

#include <string>
#include <string_view>

namespace trainrun {

// Lower-case ASCII copy.
std::string ToLower(std::string_view text);

// `text` without leading and trailing white space (std::isspace).
std::string_view TrimSpace(std::string_view text);

// Replaces every occurrence of `from` (not empty) in `*text` with `to`, left to right;
// what was put in is not searched again.
void ReplaceAll(std::string* text, std::string_view from, std::string_view to);

}  // namespace trainrun
