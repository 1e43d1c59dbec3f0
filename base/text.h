// ASCII text helpers shared by the parsers (headers, environment values, job files).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace trainrun {

// Lower-case ASCII copy.
std::string ToLower(std::string_view text);

// `text` without leading and trailing white space (std::isspace).
std::string_view TrimSpace(std::string_view text);

// Replaces every occurrence of `from` (not empty) in `*text` with `to`, left to right;
// what was put in is not searched again.
void ReplaceAll(std::string* text, std::string_view from, std::string_view to);

// `text` made safe to print on a terminal or write as one line of a log, for text
// that another program chose (a peer's host name, role or message; a rank's stderr):
// every character that could end the line or drive the terminal is written as an
// escape, everything else is kept as it is.
//
// clang-format off
//   newline, CR, tab         as the two characters "\n", "\r", "\t"
//   other C0 bytes, DEL      as "\xNN" (ESC is "\x1b")
//   C1 controls U+0080-U+009F, line and paragraph separators U+2028-U+2029,
//   bidirectional overrides U+202A-U+202E and U+2066-U+2069
//                            as "\uNNNN"
//   bytes that are not UTF-8 as "\xNN"
//   e.g. the C string "a\n\x1b[31mb" (8 bytes) prints as a\n\x1b[31mb (12 characters)
// clang-format on
//
// Backslashes are kept, so the result is not always reversible, but escaping it again
// changes nothing.
std::string EscapeControl(std::string_view text);

// `word` as a POSIX shell (bash, zsh) reads it back as one word, for command lines a
// user may paste: letters, digits and @%+=:,./-_ as they are; anything else in single
// quotes ("it's" as 'it'\''s'); a word with characters EscapeControl would change in
// bash's $'...', escaped as EscapeControl does (a newline as \n), so it stays one line.
// The empty word is ''.
std::string ShellQuote(std::string_view word);

// The words of `argv`, each as ShellQuote writes it, joined by spaces.
std::string ShellJoin(const std::vector<std::string>& argv);

}  // namespace trainrun
