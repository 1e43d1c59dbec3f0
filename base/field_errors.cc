#include "base/field_errors.h"

#include <cctype>

#include <fmt/format.h>

#include "base/field_suggest.h"

namespace trainrun {
namespace {

std::string Key(std::string_view name, bool ignore_underscores) {
  std::string key;
  for (char c : name) {
    if (c != '_' || !ignore_underscores) {
      key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return key;
}

}  // namespace

void FieldErrors::Add(std::string pointer, std::string message) {
  errors_.push_back({std::move(pointer), std::move(message)});
}

Status FieldErrors::ToStatus() const {
  return ToStatus([](const FieldError& e) {
    return fmt::format("{}: {}", e.pointer.empty() ? "/" : e.pointer, e.message);
  });
}

Status FieldErrors::ToStatus(const std::function<std::string(const FieldError&)>& line) const {
  std::string message;
  for (const FieldError& e : errors_) {
    if (!message.empty()) message += "\n";
    message += line(e);
  }
  return InvalidJobError(message);
}

std::map<std::string, FieldMember> MatchFields(const nlohmann::json& object,
                                               const std::string& pointer,
                                               const std::vector<std::string>& known,
                                               FieldErrors* errors, std::string_view what,
                                               bool ignore_underscores) {
  std::map<std::string, FieldMember> members;
  for (auto it = object.begin(); it != object.end(); ++it) {
    std::string at = pointer + "/" + JsonPointerToken(it.key());
    const std::string key = Key(it.key(), ignore_underscores);
    const std::string* match = nullptr;
    for (const std::string& name : known) {
      if (Key(name, ignore_underscores) == key) match = &name;
    }
    if (match == nullptr) {
      std::string hint = NearestName(it.key(), known);
      errors->Add(std::move(at), hint.empty()
                                     ? fmt::format("unknown {}; known {}s here are {}", what, what,
                                                   fmt::join(known, ", "))
                                     : fmt::format("unknown {}; did you mean \"{}\"?", what, hint));
      continue;
    }
    if (members.count(*match) != 0) {
      errors->Add(at, fmt::format("\"{}\" is given twice", *match));
    }
    members[*match] = {&it.value(), std::move(at)};
  }
  return members;
}

}  // namespace trainrun
