// Errors found while reading a document (a job file, a section of one), each naming
// the field at fault by its JSON pointer, and the matching of an object's member
// names against the names a reader knows.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace trainrun {

struct FieldError {
  std::string pointer;  // JSON pointer of the field at fault; "" is the document itself
  std::string message;  // what is wrong with it: "must be a string, got an integer"
};

// Collects every error a reader finds, in the order found, so one pass reports them
// all. Not thread-safe; a reader fills one and hands it on.
class FieldErrors {
 public:
  void Add(std::string pointer, std::string message);
  bool empty() const { return errors_.empty(); }
  const std::vector<FieldError>& list() const { return errors_; }

  // kInvalidJob, one line an error in the order added: "POINTER: MESSAGE" ("/" for
  // the document itself), or what `line` makes of each. Call only when not empty.
  Status ToStatus() const;
  Status ToStatus(const std::function<std::string(const FieldError&)>& line) const;

 private:
  std::vector<FieldError> errors_;
};

// A member of an object, found under the name the reader knows it by.
struct FieldMember {
  const nlohmann::json* value;  // into the object given to MatchFields; may be JSON null
  std::string pointer;          // its pointer, with the name as the document spells it
};

// The members of `object` (at JSON pointer `pointer`) keyed by the name in `known`
// they match case-insensitively. A name not in `known` is an error: "unknown field;
// did you mean "X"?" when one is close, else "unknown field; known fields here are
// A, B" (`what` replaces "field", e.g. "check"). A name given twice (in any case) is
// an error too, and the later value is kept. With `ignore_underscores`, '_' does not
// count either (entry_script matches entryScript). `object` must be an object and
// outlive the result.
std::map<std::string, FieldMember> MatchFields(const nlohmann::json& object,
                                               const std::string& pointer,
                                               const std::vector<std::string>& known,
                                               FieldErrors* errors, std::string_view what = "field",
                                               bool ignore_underscores = false);

}  // namespace trainrun
