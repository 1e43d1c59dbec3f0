// A YAML job file (Azure ML's `.runconfig`) as the JSON tree the JSON job file
// gives, so one reader validates both and its errors keep their JSON pointers.
//
//   YamlDocument doc;
//   Status s = YamlToJson(text, 64, &doc);   // doc.json, doc.lines["/script"] == 3
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace trainrun {

// Values converted from a document past this many are refused: YAML aliases
// (`*name`) repeat a node without repeating its text, so a small file can stand for
// an exponentially large tree.
constexpr size_t kMaxYamlNodes = 1 << 18;

struct YamlDocument {
  // Document order is kept: a mapping's keys stay in the order they are written.
  nlohmann::ordered_json json;
  // The line (from 1) of each value by its JSON pointer ("" is the document).
  std::map<std::string, int> lines;
};

// Parses `text` (one YAML document, with yaml-cpp) into `out`. Plain scalars take
// YAML 1.2's core schema: `null`, `~` and nothing are null, `true`/`false` booleans,
// decimal, `0x`/`0o` integers and `.inf`/`.nan`-free floats numbers, everything else
// a string; quoted scalars are always strings. Mapping keys must be scalars.
// On failure returns kInvalidJob with "LINE:COLUMN: what" (from 1) and no file name;
// also when mappings and sequences nest deeper than `max_depth` (the document's top
// level is 1) or the document expands to more than kMaxYamlNodes values.
Status YamlToJson(const std::string& text, int max_depth, YamlDocument* out);

// Whether a job file is YAML: it ends in .runconfig, .yaml or .yml; or it does not end
// in .json and its first character other than space or a `#` comment line is not `{`.
bool LooksLikeYaml(const std::string& path, const std::string& text);

}  // namespace trainrun
