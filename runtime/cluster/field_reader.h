// Reading a control message's JSON payload without trusting it: every field is
// checked for type, range and size before its value is used, and a field that
// fails is an error that names the message type and the field:
//
//   RankFailed: field "rank": expected an integer from 0 to 268435455, got a string
//   Manifest: field "digests.outputs/a": expected a string of at most 64 bytes, got a number
//   NodeResult: field "ranks[3].exitCode": expected an integer from 0 to 255, got 300
//
// A peer is authenticated but not trusted to be well-formed (another version, a bug,
// a compromised node): nothing here throws, and no value is read unchecked. The
// message decoders (control_messages.h) are written with it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "runtime/cluster/control_protocol.h"

namespace trainrun {

enum class Presence {
  kRequired,  // absent (or null) is an error
  kOptional,  // absent or null leaves *out as it was
};

class FieldReader {
 public:
  // Reads the fields of `object`, the payload of a `type` message (or an object
  // nested in it at `path`, e.g. "failure" or "ranks[2]"). `object` must outlive the
  // reader. An `object` that is not a JSON object fails every read.
  FieldReader(MessageType type, const nlohmann::json& object, std::string path = "");

  // An integer in [min, max] (a JSON number without a fraction). `T` is an integer
  // type that holds min and max.
  template <typename T>
  Status Int(std::string_view name, int64_t min, int64_t max, T* out,
             Presence presence = Presence::kRequired) const {
    int64_t value = 0;
    bool present = false;
    TR_RETURN_IF_ERROR(ReadInt(name, min, max, presence, &value, &present));
    if (present) *out = static_cast<T>(value);
    return Status::Ok();
  }
  // The same for a field that is optional by nature: absent or null leaves *out
  // empty.
  template <typename T>
  Status OptionalInt(std::string_view name, int64_t min, int64_t max, std::optional<T>* out) const {
    int64_t value = 0;
    bool present = false;
    TR_RETURN_IF_ERROR(ReadInt(name, min, max, Presence::kOptional, &value, &present));
    if (present) {
      *out = static_cast<T>(value);
    } else {
      out->reset();
    }
    return Status::Ok();
  }
  Status Bool(std::string_view name, bool* out, Presence presence = Presence::kRequired) const;
  // A finite number in [min, max].
  Status Double(std::string_view name, double min, double max, double* out,
                Presence presence = Presence::kRequired) const;
  // A string of at most `max_bytes` bytes, kept as it is: for values that are data
  // (a file key, an argument), not for printing.
  Status String(std::string_view name, size_t max_bytes, std::string* out,
                Presence presence = Presence::kRequired) const;
  // A string that people read (a host, a reason, a warning): as String, then
  // escaped with EscapeControl (base/text.h), so that it can go to a terminal, a log
  // or run.json as it is and never forges a line or drives the terminal.
  Status Text(std::string_view name, size_t max_bytes, std::string* out,
              Presence presence = Presence::kRequired) const;
  // An array of at most `max_items` strings of at most `max_bytes` bytes each.
  Status StringList(std::string_view name, size_t max_items, size_t max_bytes,
                    std::vector<std::string>* out, Presence presence = Presence::kRequired) const;
  // The same, each escaped as Text.
  Status TextList(std::string_view name, size_t max_items, size_t max_bytes,
                  std::vector<std::string>* out, Presence presence = Presence::kRequired) const;
  // An array of at most `max_items` integers in [min, max].
  Status IntList(std::string_view name, size_t max_items, int64_t min, int64_t max,
                 std::vector<int>* out, Presence presence = Presence::kRequired) const;
  // An object of at most `max_items` string values of at most `max_value_bytes`
  // bytes, with keys of at most `max_key_bytes`.
  Status StringMap(std::string_view name, size_t max_items, size_t max_key_bytes,
                   size_t max_value_bytes, std::map<std::string, std::string>* out,
                   Presence presence = Presence::kRequired) const;
  // A nested object, read by the returned reader (none when optional and absent).
  Result<std::optional<FieldReader>> Object(std::string_view name,
                                            Presence presence = Presence::kRequired) const;
  // An array of at most `max_items` objects, one reader each (empty when optional
  // and absent).
  Result<std::vector<FieldReader>> Objects(std::string_view name, size_t max_items,
                                           Presence presence = Presence::kRequired) const;

  // The error for this reader's `name` field: "<Type>: field "<path>": <what>", for
  // checks a caller makes across fields.
  Status Error(std::string_view name, std::string_view what) const;

  const std::string& path() const { return path_; }

 private:
  // The field, or null when it is absent (or JSON null); an error when the message
  // is not an object, or when a required field is absent (`expected` says what it
  // should have been).
  Result<const nlohmann::json*> Find(std::string_view name, Presence presence,
                                     std::string_view expected) const;
  Status ReadInt(std::string_view name, int64_t min, int64_t max, Presence presence, int64_t* value,
                 bool* present) const;
  std::string FieldPath(std::string_view name) const;

  MessageType type_;
  const nlohmann::json* object_;
  std::string path_;
};

// "a string", "an array", "true", "300", "1.5"...: what a value is, for "got ..."
// in an error (never the text of a string).
std::string DescribeJsonValue(const nlohmann::json& value);

}  // namespace trainrun
