#include "base/field_suggest.h"

#include <algorithm>
#include <cctype>

#include "base/text.h"

namespace trainrun {

size_t EditDistance(std::string_view a_in, std::string_view b_in) {
  const std::string a = ToLower(a_in);
  const std::string b = ToLower(b_in);
  // Optimal string alignment distance, three rows.
  std::vector<size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      }
    }
    before.swap(prev);
    prev.swap(cur);
  }
  return prev[b.size()];
}

std::string NearestName(std::string_view given, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const std::string& name : known) {
    size_t d = EditDistance(given, name);
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  size_t limit = std::max<size_t>(1, std::max(given.size(), best.size()) / 3);
  if (best_distance > limit) return {};
  return best;
}

std::string JsonTypeName(const nlohmann::json& value) {
  using json = nlohmann::json;
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "something else";
  }
}

std::string JsonPointerToken(std::string_view name) {
  std::string escaped;
  for (char c : name) {
    if (c == '~')
      escaped += "~0";
    else if (c == '/')
      escaped += "~1";
    else
      escaped += c;
  }
  return escaped;
}

}  // namespace trainrun
