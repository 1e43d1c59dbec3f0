#include "runtime/run/placeholders.h"

#include <cctype>

#include <fmt/format.h>

#include "base/field_suggest.h"
#include "base/text.h"

namespace trainrun {
namespace {

constexpr std::string_view kDataRefPrefix = "$AZUREML_DATAREFERENCE_";

bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Resolves the inside of {{...}} to a value, or an error naming what was wrong.
// With `values` null, only checks.
Result<std::string> Resolve(const std::string& inner, const std::vector<std::string>& names,
                            const PlaceholderValues* values) {
  if (inner == "outputs") return values ? values->outputs : std::string();
  if (inner.rfind("data.", 0) == 0) {
    std::string name = inner.substr(5);
    for (const std::string& known : names) {
      if (known == name) return values ? values->data.at(known) : std::string();
    }
    std::string hint = NearestName(name, names);
    if (names.empty()) {
      return InvalidJobError(
          fmt::format("{{{{{}}}}} names a data reference, but the job has none", inner));
    }
    return InvalidJobError(fmt::format("{{{{{}}}}} names no data reference{}", inner,
                                       hint.empty()
                                           ? fmt::format(" (known: {})", fmt::join(names, ", "))
                                           : fmt::format("; did you mean {{{{data.{}}}}}?", hint)));
  }
  return InvalidJobError(fmt::format(
      "unknown placeholder {{{{{}}}}}; known are {{{{outputs}}}} and {{{{data.NAME}}}}", inner));
}

Result<std::string> Walk(std::string_view text, const std::vector<std::string>& names,
                         const PlaceholderValues* values) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text.compare(pos, 2, "{{") == 0) {
      size_t end = text.find("}}", pos + 2);
      if (end == std::string_view::npos) {
        return InvalidJobError(fmt::format("unclosed placeholder \"{}\"", text.substr(pos)));
      }
      TR_ASSIGN_OR_RETURN(
          std::string value,
          Resolve(std::string(TrimSpace(text.substr(pos + 2, end - pos - 2))), names, values));
      out += value;
      pos = end + 2;
      continue;
    }
    if (text.compare(pos, kDataRefPrefix.size(), kDataRefPrefix) == 0) {
      size_t end = pos + kDataRefPrefix.size();
      while (end < text.size() && IsNameChar(text[end])) ++end;
      std::string name(text.substr(pos + kDataRefPrefix.size(), end - pos - kDataRefPrefix.size()));
      // The longest data reference name that the text starts with wins, so
      // "$AZUREML_DATAREFERENCE_mnist_train" is mnist_train before mnist.
      const std::string* match = nullptr;
      for (const std::string& known : names) {
        if (name.compare(0, known.size(), known) == 0 &&
            (match == nullptr || known.size() > match->size())) {
          match = &known;
        }
      }
      if (match != nullptr) {
        if (values) out += values->data.at(*match);
        pos += kDataRefPrefix.size() + match->size();
        continue;
      }
    }
    out += text[pos];
    ++pos;
  }
  return out;
}

}  // namespace

Status CheckPlaceholders(std::string_view text, const std::vector<std::string>& data_names) {
  return Walk(text, data_names, nullptr).status();
}

Result<std::string> ExpandPlaceholders(std::string_view text, const PlaceholderValues& values) {
  std::vector<std::string> names;
  for (const auto& [name, path] : values.data) names.push_back(name);
  return Walk(text, names, &values);
}

}  // namespace trainrun
