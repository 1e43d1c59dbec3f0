// Ignore rules for source snapshots: .amlignore, else .gitignore, with git's
// pattern semantics (negation with '!', '/'-anchoring, trailing '/' for directories
// only, '*', '?', '[...]' and '**'). The last matching rule wins; a file under an
// ignored directory stays ignored because the snapshot never descends into it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace trainrun {

// Matches `text` against a gitignore glob: '*' and '?' stop at '/', '**' crosses it,
// "**/" also matches no directory at all.
bool GlobMatch(std::string_view pattern, std::string_view text);

class IgnoreRules {
 public:
  // Adds the rules of an ignore file found in `dir` ('/'-separated, relative to the
  // snapshot root; "" for the root). Later files (deeper directories) take
  // precedence over earlier ones.
  void AddFile(const std::string& dir, std::string_view content);

  // Whether `path` (relative to the root, '/'-separated, no leading '/') is ignored.
  bool IsIgnored(std::string_view path, bool is_dir) const;

  size_t size() const { return rules_.size(); }

 private:
  struct Rule {
    std::string dir;      // where the ignore file was; "" for the root
    std::string pattern;  // without '!', leading '/' or trailing '/'
    bool negate = false;
    bool dir_only = false;
    bool anchored = false;  // had a '/' before its end: match the whole relative path
  };
  std::vector<Rule> rules_;
};

}  // namespace trainrun
