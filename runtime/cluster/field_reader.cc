#include "runtime/cluster/field_reader.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "base/text.h"

namespace trainrun {
namespace {

using nlohmann::json;

// Peer-chosen keys appear in error messages: escaped, and this long at most.
constexpr size_t kMaxKeyInMessage = 64;

std::string KeyForMessage(std::string_view key) {
  std::string shown = EscapeControl(key.substr(0, kMaxKeyInMessage));
  if (key.size() > kMaxKeyInMessage) shown += "...";
  return shown;
}

std::string IntRange(int64_t min, int64_t max) {
  return fmt::format("an integer from {} to {}", min, max);
}

}  // namespace

std::string DescribeJsonValue(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::number_integer: return std::to_string(value.get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(value.get<uint64_t>());
    case json::value_t::number_float: return fmt::format("{}", value.get<double>());
    case json::value_t::binary: return "binary data";
    case json::value_t::discarded: return "nothing";
  }
  return "an unknown value";
}

FieldReader::FieldReader(MessageType type, const json& object, std::string path)
    : type_(type), object_(&object), path_(std::move(path)) {}

std::string FieldReader::FieldPath(std::string_view name) const {
  std::string key = KeyForMessage(name);
  return path_.empty() ? key : path_ + "." + key;
}

Status FieldReader::Error(std::string_view name, std::string_view what) const {
  return InvalidArgumentError(
      fmt::format("{}: field \"{}\": {}", MessageTypeName(type_), FieldPath(name), what));
}

Result<const json*> FieldReader::Find(std::string_view name, Presence presence,
                                      std::string_view expected) const {
  if (!object_->is_object()) {
    std::string where = path_.empty() ? "the payload" : fmt::format("field \"{}\"", path_);
    return InvalidArgumentError(fmt::format("{}: {}: expected an object, got {}",
                                            MessageTypeName(type_), where,
                                            DescribeJsonValue(*object_)));
  }
  auto it = object_->find(name);
  if (it == object_->end() || it->is_null()) {
    if (presence == Presence::kOptional) return static_cast<const json*>(nullptr);
    return Error(name, fmt::format("missing (expected {})", expected));
  }
  return &*it;
}

Status FieldReader::ReadInt(std::string_view name, int64_t min, int64_t max, Presence presence,
                            int64_t* value, bool* present) const {
  const std::string expected = IntRange(min, max);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  *present = field != nullptr;
  if (field == nullptr) return Status::Ok();
  bool in_range = false;
  if (field->is_number_unsigned()) {
    const uint64_t v = field->get<uint64_t>();
    in_range = max >= 0 && v <= static_cast<uint64_t>(max) && static_cast<int64_t>(v) >= min;
    *value = in_range ? static_cast<int64_t>(v) : 0;
  } else if (field->is_number_integer()) {
    const int64_t v = field->get<int64_t>();
    in_range = v >= min && v <= max;
    *value = v;
  }
  if (!in_range) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  return Status::Ok();
}

Status FieldReader::Bool(std::string_view name, bool* out, Presence presence) const {
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, "true or false"));
  if (field == nullptr) return Status::Ok();
  if (!field->is_boolean()) {
    return Error(name, fmt::format("expected true or false, got {}", DescribeJsonValue(*field)));
  }
  *out = field->get<bool>();
  return Status::Ok();
}

Status FieldReader::Double(std::string_view name, double min, double max, double* out,
                           Presence presence) const {
  const std::string expected = fmt::format("a number from {} to {}", min, max);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  if (field == nullptr) return Status::Ok();
  if (!field->is_number()) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  const double v = field->get<double>();
  if (!std::isfinite(v) || v < min || v > max) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  *out = v;
  return Status::Ok();
}

Status FieldReader::String(std::string_view name, size_t max_bytes, std::string* out,
                           Presence presence) const {
  const std::string expected = fmt::format("a string of at most {} bytes", max_bytes);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  if (field == nullptr) return Status::Ok();
  if (!field->is_string()) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  const std::string& value = field->get_ref<const std::string&>();
  if (value.size() > max_bytes) {
    return Error(name, fmt::format("expected {}, got {} bytes", expected, value.size()));
  }
  *out = value;
  return Status::Ok();
}

// Absent optional fields leave *out as it was: the caller's default, escaped again,
// which changes nothing for text without control characters.
Status FieldReader::Text(std::string_view name, size_t max_bytes, std::string* out,
                         Presence presence) const {
  std::string value = *out;
  TR_RETURN_IF_ERROR(String(name, max_bytes, &value, presence));
  *out = EscapeControl(value);
  return Status::Ok();
}

Status FieldReader::TextList(std::string_view name, size_t max_items, size_t max_bytes,
                             std::vector<std::string>* out, Presence presence) const {
  std::vector<std::string> values = *out;
  TR_RETURN_IF_ERROR(StringList(name, max_items, max_bytes, &values, presence));
  for (std::string& v : values) v = EscapeControl(v);
  *out = std::move(values);
  return Status::Ok();
}

Status FieldReader::StringList(std::string_view name, size_t max_items, size_t max_bytes,
                               std::vector<std::string>* out, Presence presence) const {
  const std::string expected =
      fmt::format("an array of at most {} strings of at most {} bytes each", max_items, max_bytes);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  if (field == nullptr) return Status::Ok();
  if (!field->is_array()) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  if (field->size() > max_items) {
    return Error(name, fmt::format("expected {}, got {} items", expected, field->size()));
  }
  std::vector<std::string> values;
  values.reserve(field->size());
  for (size_t i = 0; i < field->size(); ++i) {
    const json& item = (*field)[i];
    if (!item.is_string() || item.get_ref<const std::string&>().size() > max_bytes) {
      return Error(
          name, fmt::format("expected {}, got {} at [{}]", expected,
                            item.is_string()
                                ? fmt::format("{} bytes", item.get_ref<const std::string&>().size())
                                : DescribeJsonValue(item),
                            i));
    }
    values.push_back(item.get<std::string>());
  }
  *out = std::move(values);
  return Status::Ok();
}

Status FieldReader::IntList(std::string_view name, size_t max_items, int64_t min, int64_t max,
                            std::vector<int>* out, Presence presence) const {
  const std::string expected =
      fmt::format("an array of at most {} integers from {} to {}", max_items, min, max);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  if (field == nullptr) return Status::Ok();
  if (!field->is_array()) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  if (field->size() > max_items) {
    return Error(name, fmt::format("expected {}, got {} items", expected, field->size()));
  }
  std::vector<int> values;
  values.reserve(field->size());
  for (size_t i = 0; i < field->size(); ++i) {
    const json& item = (*field)[i];
    bool ok = false;
    if (item.is_number_unsigned()) {
      ok = max >= 0 && item.get<uint64_t>() <= static_cast<uint64_t>(max) &&
           static_cast<int64_t>(item.get<uint64_t>()) >= min;
    } else if (item.is_number_integer()) {
      ok = item.get<int64_t>() >= min && item.get<int64_t>() <= max;
    }
    if (!ok) {
      return Error(
          name, fmt::format("expected {}, got {} at [{}]", expected, DescribeJsonValue(item), i));
    }
    values.push_back(static_cast<int>(item.get<int64_t>()));
  }
  *out = std::move(values);
  return Status::Ok();
}

Status FieldReader::StringMap(std::string_view name, size_t max_items, size_t max_key_bytes,
                              size_t max_value_bytes, std::map<std::string, std::string>* out,
                              Presence presence) const {
  const std::string expected = fmt::format("an object of at most {} strings of at most {} bytes",
                                           max_items, max_value_bytes);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  if (field == nullptr) return Status::Ok();
  if (!field->is_object()) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  if (field->size() > max_items) {
    return Error(name, fmt::format("expected {}, got {} items", expected, field->size()));
  }
  std::map<std::string, std::string> values;
  FieldReader inner(type_, *field, FieldPath(name));
  for (const auto& [key, value] : field->items()) {
    if (key.size() > max_key_bytes) {
      return Error(name, fmt::format("a key of {} bytes is longer than {} bytes", key.size(),
                                     max_key_bytes));
    }
    std::string text;
    TR_RETURN_IF_ERROR(inner.String(key, max_value_bytes, &text));
    values.emplace(key, std::move(text));
  }
  *out = std::move(values);
  return Status::Ok();
}

Result<std::optional<FieldReader>> FieldReader::Object(std::string_view name,
                                                       Presence presence) const {
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, "an object"));
  if (field == nullptr) return std::optional<FieldReader>();
  if (!field->is_object()) {
    return Error(name, fmt::format("expected an object, got {}", DescribeJsonValue(*field)));
  }
  return std::optional<FieldReader>(FieldReader(type_, *field, FieldPath(name)));
}

Result<std::vector<FieldReader>> FieldReader::Objects(std::string_view name, size_t max_items,
                                                      Presence presence) const {
  const std::string expected = fmt::format("an array of at most {} objects", max_items);
  TR_ASSIGN_OR_RETURN(const json* field, Find(name, presence, expected));
  std::vector<FieldReader> readers;
  if (field == nullptr) return readers;
  if (!field->is_array()) {
    return Error(name, fmt::format("expected {}, got {}", expected, DescribeJsonValue(*field)));
  }
  if (field->size() > max_items) {
    return Error(name, fmt::format("expected {}, got {} items", expected, field->size()));
  }
  readers.reserve(field->size());
  for (size_t i = 0; i < field->size(); ++i) {
    const json& item = (*field)[i];
    std::string path = fmt::format("{}[{}]", FieldPath(name), i);
    if (!item.is_object()) {
      return InvalidArgumentError(fmt::format("{}: field \"{}\": expected an object, got {}",
                                              MessageTypeName(type_), path,
                                              DescribeJsonValue(item)));
    }
    readers.emplace_back(type_, item, std::move(path));
  }
  return readers;
}

}  // namespace trainrun
