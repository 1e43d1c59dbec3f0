#include "runtime/run/ignore_rules.h"

#include <cstdint>
#include <unordered_set>

namespace trainrun {
namespace {

// Matches one [...] class at the start of `pattern` against `c`. Sets `length` to the
// class's length in the pattern; returns false with length 0 for a malformed class,
// which is then taken literally.
bool MatchClass(std::string_view pattern, char c, size_t* length) {
  size_t i = 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < pattern.size() && (pattern[i] != ']' || first)) {
    first = false;
    char lo = pattern[i];
    if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
    char hi = lo;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      hi = pattern[i + 2];
      i += 2;
    }
    if (c >= lo && c <= hi) matched = true;
    ++i;
  }
  if (i >= pattern.size()) {
    *length = 0;
    return false;
  }
  *length = i + 1;
  return matched != negate;
}

}  // namespace

// Both arguments of every call are suffixes of the pattern and text GlobMatch was
// given, so their lengths name the state. A state known not to match is not tried
// again: without that, "*a*a*a*a*a*a*a*a*a*a*a*b" against a long name of a's
// backtracks exponentially (a .gitignore line would hang the snapshot).
namespace {
class GlobMatcher {
 public:
  explicit GlobMatcher(size_t text_size) : width_(text_size + 1) {}
  bool Match(std::string_view p, std::string_view t) {
    const uint64_t state = static_cast<uint64_t>(p.size()) * width_ + t.size();
    if (failed_.count(state) != 0) return false;
    const bool matched = MatchUncached(p, t);
    if (!matched) failed_.insert(state);
    return matched;
  }

 private:
  bool MatchUncached(std::string_view p, std::string_view t);

  uint64_t width_;
  std::unordered_set<uint64_t> failed_;
};
}  // namespace

bool GlobMatcher::MatchUncached(std::string_view p, std::string_view t) {
  while (!p.empty()) {
    if (p.substr(0, 2) == "**") {
      std::string_view rest = p.substr(2);
      while (rest.substr(0, 1) == "*") rest.remove_prefix(1);
      if (rest.empty()) return true;
      if (rest[0] == '/') {
        rest.remove_prefix(1);
        for (size_t i = 0; i <= t.size(); ++i) {
          if ((i == 0 || t[i - 1] == '/') && Match(rest, t.substr(i))) return true;
        }
        return false;
      }
      for (size_t i = 0; i <= t.size(); ++i) {
        if (Match(rest, t.substr(i))) return true;
      }
      return false;
    }
    char c = p[0];
    if (c == '*') {
      std::string_view rest = p.substr(1);
      for (size_t i = 0; i <= t.size(); ++i) {
        if (Match(rest, t.substr(i))) return true;
        if (i < t.size() && t[i] == '/') break;
      }
      return false;
    }
    if (t.empty()) return false;
    if (c == '?') {
      if (t[0] == '/') return false;
      p.remove_prefix(1);
      t.remove_prefix(1);
      continue;
    }
    if (c == '[') {
      size_t length = 0;
      bool matched = MatchClass(p, t[0], &length);
      if (length > 0) {
        if (!matched || t[0] == '/') return false;
        p.remove_prefix(length);
        t.remove_prefix(1);
        continue;
      }
    }
    if (c == '\\' && p.size() > 1) {
      p.remove_prefix(1);
      c = p[0];
    }
    if (c != t[0]) return false;
    p.remove_prefix(1);
    t.remove_prefix(1);
  }
  return t.empty();
}

bool GlobMatch(std::string_view p, std::string_view t) { return GlobMatcher(t.size()).Match(p, t); }

void IgnoreRules::AddFile(const std::string& dir, std::string_view content) {
  size_t pos = 0;
  while (pos <= content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string line(content.substr(pos, end - pos));
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // Trailing spaces go unless escaped with a backslash.
    while (!line.empty() && line.back() == ' ' &&
           !(line.size() >= 2 && line[line.size() - 2] == '\\')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') continue;
    Rule rule;
    rule.dir = dir;
    if (line[0] == '!') {
      rule.negate = true;
      line.erase(0, 1);
    } else if (line[0] == '\\' && line.size() > 1 && (line[1] == '!' || line[1] == '#')) {
      line.erase(0, 1);
    }
    if (!line.empty() && line.back() == '/') {
      rule.dir_only = true;
      line.pop_back();
    }
    if (line.find('/') != std::string::npos) rule.anchored = true;
    if (!line.empty() && line[0] == '/') line.erase(0, 1);
    if (line.empty()) continue;
    rule.pattern = line;
    rules_.push_back(std::move(rule));
  }
}

bool IgnoreRules::IsIgnored(std::string_view path, bool is_dir) const {
  bool ignored = false;
  for (const Rule& rule : rules_) {
    if (rule.dir_only && !is_dir) continue;
    std::string_view relative = path;
    if (!rule.dir.empty()) {
      if (path.size() <= rule.dir.size() || path.compare(0, rule.dir.size(), rule.dir) != 0 ||
          path[rule.dir.size()] != '/') {
        continue;
      }
      relative = path.substr(rule.dir.size() + 1);
    }
    bool matched;
    if (rule.anchored) {
      matched = GlobMatch(rule.pattern, relative);
    } else {
      size_t slash = relative.rfind('/');
      matched = GlobMatch(rule.pattern,
                          slash == std::string_view::npos ? relative : relative.substr(slash + 1));
    }
    if (matched) ignored = !rule.negate;
  }
  return ignored;
}

}  // namespace trainrun
