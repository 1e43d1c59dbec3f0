#include "runtime/run/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "base/field_suggest.h"

namespace trainrun {
namespace {

using nlohmann::ordered_json;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

bool AllOf(std::string_view text, int (*is)(int)) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [&](char c) { return is(static_cast<unsigned char>(c)); });
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloat(std::string_view t) {
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.remove_prefix(1);
  const size_t e = t.find_first_of("eE");
  std::string_view mantissa = t.substr(0, e);
  if (e != std::string_view::npos) {
    std::string_view exponent = t.substr(e + 1);
    if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.remove_prefix(1);
    if (!AllOf(exponent, isdigit)) return false;
  }
  const size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return AllOf(mantissa, isdigit);
  std::string_view whole = mantissa.substr(0, dot), fraction = mantissa.substr(dot + 1);
  if (whole.empty()) return AllOf(fraction, isdigit);
  return AllOf(whole, isdigit) && (fraction.empty() || AllOf(fraction, isdigit));
}

// YAML 1.2 core schema for a plain (unquoted) scalar.
ordered_json PlainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  const std::string_view digits =
      std::string_view(text).substr(text[0] == '-' || text[0] == '+' ? 1 : 0);
  if (AllOf(digits, isdigit)) {
    // Parsed as JSON so a number too large for int64 keeps its value as JSON would
    // (unsigned, or a double), and the range checks see it as written.
    ordered_json number = ordered_json::parse(text[0] == '+' ? text.substr(1) : text, nullptr,
                                              /*allow_exceptions=*/false);
    if (!number.is_discarded()) return number;
  }
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'o') &&
      text.size() <= 18) {
    const std::string_view rest = std::string_view(text).substr(2);
    if (text[1] == 'x' && AllOf(rest, isxdigit)) return std::strtoull(rest.data(), nullptr, 16);
    if (text[1] == 'o' && rest.find_first_not_of("01234567") == std::string_view::npos) {
      return std::strtoull(rest.data(), nullptr, 8);
    }
  }
  if (IsFloat(text)) {
    const double d = std::strtod(text.c_str(), nullptr);
    if (std::isfinite(d)) return d;
  }
  return text;
}

class Converter {
 public:
  Converter(int max_depth, YamlDocument* out) : max_depth_(max_depth), out_(out) {}

  Status Convert(const YAML::Node& node, const std::string& pointer, int depth,
                 ordered_json* value) {
    if (++count_ > kMaxYamlNodes) {
      return InvalidJobError(fmt::format("{}: the document expands to more than {} values",
                                         Where(node), kMaxYamlNodes));
    }
    out_->lines.emplace(pointer, node.Mark().line + 1);
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null: *value = nullptr; return Status::Ok();
      case YAML::NodeType::Scalar:
        // yaml-cpp tags plain scalars "?" and quoted ones "!".
        *value = node.Tag() == "?" ? PlainScalar(node.Scalar()) : ordered_json(node.Scalar());
        return Status::Ok();
      case YAML::NodeType::Sequence: {
        if (depth > max_depth_) return TooDeep(node);
        *value = ordered_json::array();
        size_t i = 0;
        for (const YAML::Node& item : node) {
          ordered_json converted;
          TR_RETURN_IF_ERROR(
              Convert(item, fmt::format("{}/{}", pointer, i++), depth + 1, &converted));
          value->push_back(std::move(converted));
        }
        return Status::Ok();
      }
      case YAML::NodeType::Map: {
        if (depth > max_depth_) return TooDeep(node);
        *value = ordered_json::object();
        for (const auto& entry : node) {
          if (!entry.first.IsScalar()) {
            return InvalidJobError(
                fmt::format("{}: a mapping key must be a plain name", Where(entry.first)));
          }
          const std::string key = entry.first.Scalar();
          if (value->contains(key)) {
            return InvalidJobError(
                fmt::format("{}: \"{}\" is given twice", Where(entry.first), key));
          }
          ordered_json converted;
          TR_RETURN_IF_ERROR(
              Convert(entry.second, pointer + "/" + JsonPointerToken(key), depth + 1, &converted));
          (*value)[key] = std::move(converted);
        }
        return Status::Ok();
      }
    }
    return Status::Ok();
  }

 private:
  static std::string Where(const YAML::Node& node) {
    return fmt::format("{}:{}", node.Mark().line + 1, node.Mark().column + 1);
  }
  Status TooDeep(const YAML::Node& node) const {
    return InvalidJobError(fmt::format(
        "{}: mappings and sequences are nested more than {} levels deep", Where(node), max_depth_));
  }

  int max_depth_;
  YamlDocument* out_;
  size_t count_ = 0;
};

}  // namespace

Status YamlToJson(const std::string& text, int max_depth, YamlDocument* out) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return InvalidJobError(
        fmt::format("{}:{}: not valid YAML: {}", e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  try {
    return Converter(max_depth, out).Convert(root, "", 1, &out->json);
  } catch (const YAML::Exception& e) {
    return InvalidJobError(
        fmt::format("{}:{}: not valid YAML: {}", e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

bool LooksLikeYaml(const std::string& path, const std::string& text) {
  for (std::string_view ext : {".runconfig", ".yaml", ".yml"}) {
    if (EndsWith(path, ext)) return true;
  }
  if (EndsWith(path, ".json")) return false;
  size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
    } else if (text[i] == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else {
      break;
    }
  }
  return i < text.size() && text[i] != '{';
}

}  // namespace trainrun
