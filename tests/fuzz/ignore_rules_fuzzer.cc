// libFuzzer target: .amlignore/.gitignore rules and the paths matched against them.
// The input is an ignore file, a NUL byte, then paths one per line (a trailing '/'
// marks a directory); without a NUL, the whole input is the ignore file and its
// own lines are the paths. Each path is also matched as a glob against the next.
//
// Built by -DTRAINRUN_BUILD_FUZZERS=ON (scripts/fuzz.sh); corpus in corpus/ignore_rules.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/run/ignore_rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view rules_text = input.substr(0, nul);
  const std::string_view paths_text = nul == std::string_view::npos ? input : input.substr(nul + 1);

  trainrun::IgnoreRules rules;
  rules.AddFile("", rules_text);
  rules.AddFile("sub/dir", rules_text);

  std::vector<std::string_view> paths;
  size_t start = 0;
  // Every path meets every rule: past a few dozen paths an input only runs slower.
  while (start <= paths_text.size() && paths.size() < 32) {
    size_t end = paths_text.find('\n', start);
    if (end == std::string_view::npos) end = paths_text.size();
    paths.push_back(paths_text.substr(start, end - start));
    start = end + 1;
  }
  for (size_t i = 0; i < paths.size(); ++i) {
    std::string_view path = paths[i];
    const bool is_dir = !path.empty() && path.back() == '/';
    if (is_dir) path.remove_suffix(1);
    rules.IsIgnored(path, is_dir);
    if (i + 1 < paths.size()) trainrun::GlobMatch(paths[i], paths[i + 1]);
  }
  return 0;
}
