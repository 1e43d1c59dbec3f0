#include "runtime/run/job_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/field_errors.h"
#include "base/field_suggest.h"
#include "base/input_limits.h"
#include "base/json_depth.h"
#include "base/text.h"
#include "runtime/run/azureml_config.h"
#include "runtime/run/placeholders.h"
#include "runtime/run/yaml_json.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The job file's errors, one line each: "FILE[:LINE]: POINTER: MESSAGE". A YAML file's
// errors also name the line ("job.runconfig:7: /nodeCount: ..."), the value's or its
// nearest parent's. A field that was translated is named as the file spells it
// (/entry_script, not /script): `renamed` holds (trainrun's pointer, the file's).
Status JobErrorsStatus(const FieldErrors& errors, const std::string& file,
                       const std::map<std::string, int>& yaml_lines,
                       const std::vector<std::pair<std::string, std::string>>& renamed) {
  const auto line_of = [&](std::string pointer) -> std::string {
    if (yaml_lines.empty()) return "";
    while (true) {
      auto it = yaml_lines.find(pointer);
      if (it != yaml_lines.end()) return fmt::format(":{}", it->second);
      const size_t slash = pointer.rfind('/');
      if (slash == std::string::npos) return "";
      pointer.resize(slash);
    }
  };
  return errors.ToStatus([&](const FieldError& e) {
    std::string pointer = e.pointer;
    for (const auto& [now, spelled] : renamed) {
      if (pointer == now || pointer.rfind(now + "/", 0) == 0) {
        pointer = spelled + pointer.substr(now.size());
        break;
      }
    }
    return fmt::format("{}{}: {}: {}", file, line_of(pointer), pointer.empty() ? "/" : pointer,
                       e.message);
  });
}

// trainrun's names for an object, then Azure ML's for the same place (for "did you
// mean", and accepted where another part of trainrun reads them).
std::vector<std::string> Known(std::vector<std::string> own, const std::string& azureml_pointer) {
  for (std::string& name : AzureMlNamesAt(azureml_pointer)) {
    const bool have = std::any_of(own.begin(), own.end(), [&](const std::string& n) {
      return FieldKey(n) == FieldKey(name);
    });
    if (!have) own.push_back(std::move(name));
  }
  return own;
}

// Reads the members of one JSON object, matching names case-insensitively and
// without '_' (base/field_errors.h), and refusing names it does not know.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string pointer, const std::vector<std::string>& known,
               FieldErrors* errors)
      : pointer_(std::move(pointer)),
        errors_(errors),
        members_(MatchFields(object, pointer_, known, errors, "field",
                             /*ignore_underscores=*/true)) {}

  std::string Pointer(const std::string& name) const {
    return pointer_ + "/" + JsonPointerToken(name);
  }
  // The pointer with the name as the file spells it.
  std::string At(const std::string& name) const {
    auto it = members_.find(name);
    return it == members_.end() ? Pointer(name) : it->second.pointer;
  }

  // The member, or null when absent or JSON null.
  const json* Get(const std::string& name) const {
    auto it = members_.find(name);
    if (it == members_.end() || it->second.value->is_null()) return nullptr;
    return it->second.value;
  }

  bool String(const std::string& name, std::string* out, bool allow_empty = false) {
    const json* v = Get(name);
    if (v == nullptr) return false;
    if (!v->is_string()) {
      errors_->Add(At(name), fmt::format("must be a string, got {}", JsonTypeName(*v)));
      return false;
    }
    if (!allow_empty && v->get<std::string>().empty()) {
      errors_->Add(At(name), "must not be empty");
      return false;
    }
    *out = v->get<std::string>();
    return true;
  }

  bool Bool(const std::string& name, bool* out) {
    const json* v = Get(name);
    if (v == nullptr) return false;
    if (!v->is_boolean()) {
      errors_->Add(At(name), fmt::format("must be true or false, got {}", JsonTypeName(*v)));
      return false;
    }
    *out = v->get<bool>();
    return true;
  }

  // The range is checked on the JSON value before any conversion: 2^64-1 is an
  // unsigned JSON number and 1e300 a double, and neither fits an int64_t.
  bool Int(const std::string& name, int min, int max, std::optional<int>* out) {
    const json* v = Get(name);
    if (v == nullptr) return false;
    bool fits = false;
    if (v->is_number_unsigned()) {
      fits = v->get<uint64_t>() <= static_cast<uint64_t>(std::max(max, 0)) &&
             static_cast<int64_t>(v->get<uint64_t>()) >= min;
    } else if (v->is_number_integer()) {
      fits = v->get<int64_t>() >= min && v->get<int64_t>() <= max;
    } else if (v->is_number_float()) {
      const double d = v->get<double>();
      fits = d >= min && d <= max && std::floor(d) == d;
    }
    if (!fits) {
      errors_->Add(At(name),
                   fmt::format("must be an integer from {} to {}, got {}", min, max, v->dump()));
      return false;
    }
    *out = v->is_number_float() ? static_cast<int>(v->get<double>()) : v->get<int>();
    return true;
  }

  // Strings, numbers and booleans, as Azure ML's script_params allow.
  bool Scalars(const std::string& name, std::vector<std::string>* out) {
    const json* v = Get(name);
    if (v == nullptr) return false;
    if (!v->is_array()) {
      errors_->Add(At(name), fmt::format("must be an array, got {}", JsonTypeName(*v)));
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < v->size(); ++i) {
      const json& item = (*v)[i];
      std::string pointer = fmt::format("{}/{}", At(name), i);
      if (item.is_string()) {
        out->push_back(item.get<std::string>());
      } else if (item.is_number() || item.is_boolean()) {
        out->push_back(item.dump());
      } else {
        errors_->Add(pointer,
                     fmt::format("must be a string or a number, got {}", JsonTypeName(item)));
        ok = false;
      }
    }
    return ok;
  }

  const json* Object(const std::string& name) {
    const json* v = Get(name);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) {
      errors_->Add(At(name), fmt::format("must be an object, got {}", JsonTypeName(*v)));
      return nullptr;
    }
    return v;
  }

  FieldErrors* errors() { return errors_; }

 private:
  std::string pointer_;
  FieldErrors* errors_;
  std::map<std::string, FieldMember> members_;
};

// Checks a path or URI field against base/input_limits.h; false, with an error
// naming the field, when it is too long.
bool PathFits(const std::string& value, const std::string& pointer, FieldErrors* errors) {
  Status fits = CheckPathLength(value);
  if (!fits.ok()) errors->Add(pointer, fits.message());
  return fits.ok();
}

// The byte offset of the '[' or '{' that opens nesting level `depth` (1: the top),
// or text.size() when there is none. `text` is JSON up to that point.
size_t OffsetOfDepth(const std::string& text, int depth) {
  int level = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++level == depth) return i;
    } else if (c == ']' || c == '}') {
      --level;
    }
  }
  return text.size();
}

// "line:column" (both from 1) of byte `offset`, which editors understand.
std::string LineColumn(const std::string& text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("{}:{}", line, column);
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Parses `text` as one of `choices`, case-insensitively.
template <typename Enum>
bool Choice(ObjectReader& reader, const std::string& name,
            const std::vector<std::pair<std::string, Enum>>& choices, Enum* out) {
  std::string text;
  if (!reader.String(name, &text)) return false;
  std::vector<std::string> names;
  for (const auto& [choice, value] : choices) {
    if (ToLower(choice) == ToLower(text)) {
      *out = value;
      return true;
    }
    names.push_back(choice);
  }
  reader.errors()->Add(reader.At(name),
                       fmt::format("\"{}\" is not one of {}", text, fmt::join(names, ", ")));
  return false;
}

void ParseData(const json& data, const std::string& pointer, FieldErrors* errors,
               std::vector<DataReference>* out) {
  for (auto it = data.begin(); it != data.end(); ++it) {
    std::string at = pointer + "/" + it.key();
    if (!IsEnvName(it.key())) {
      errors->Add(at,
                  "a data reference name must be letters, digits and _ (it becomes "
                  "AZUREML_DATAREFERENCE_<name>)");
      continue;
    }
    // The name is also a folder: <run dir>/data/<name>.
    if (!PathFits(it.key(), at, errors)) continue;
    if (!it.value().is_object()) {
      errors->Add(at, fmt::format("must be an object, got {}", JsonTypeName(it.value())));
      continue;
    }
    ObjectReader ref(it.value(), at,
                     Known({"dataLocation", "mechanism", "pathOnCompute", "environmentVariableName",
                            "overwrite"},
                           "/data/*"),
                     errors);
    DataReference d;
    d.name = it.key();
    if (const json* location = ref.Object("dataLocation")) {
      ObjectReader loc(*location, ref.At("dataLocation"), Known({"uri"}, "/data/*/dataLocation"),
                       errors);
      if (!loc.String("uri", &d.uri)) {
        if (loc.Get("uri") == nullptr) errors->Add(loc.Pointer("uri"), "is required");
      } else {
        PathFits(d.uri, loc.At("uri"), errors);
      }
    } else if (ref.Get("dataLocation") == nullptr) {
      errors->Add(ref.Pointer("dataLocation"), "is required (an object with \"uri\")");
    }
    Choice<DataMechanism>(ref, "mechanism",
                          {{"mount", DataMechanism::kMount},
                           {"download", DataMechanism::kDownload},
                           {"direct", DataMechanism::kDirect}},
                          &d.mechanism);
    if (ref.String("pathOnCompute", &d.path_on_compute)) {
      PathFits(d.path_on_compute, ref.At("pathOnCompute"), errors);
    }
    if (ref.String("environmentVariableName", &d.environment_variable_name) &&
        !IsEnvName(d.environment_variable_name)) {
      errors->Add(ref.At("environmentVariableName"),
                  fmt::format("\"{}\" is not a valid environment variable name",
                              d.environment_variable_name));
    }
    ref.Bool("overwrite", &d.overwrite);
    out->push_back(std::move(d));
  }
}

// A size in bytes: an integer, or a string of digits with an optional K, M or G
// (binary: 64M = 64 MiB), as trainrun-nccl-check and nccl-tests take them.
bool ByteSize(ObjectReader& reader, const std::string& name, uint64_t* out) {
  const json* v = reader.Get(name);
  if (v == nullptr) return false;
  const std::string bad = fmt::format(
      "must be a size in bytes from 1 to 8G, such as 8, \"64K\", \"256M\" or \"1G\"; got {}",
      v->dump());
  uint64_t value = 0;
  if (v->is_number_unsigned() || (v->is_number_integer() && v->get<int64_t>() > 0)) {
    value = v->get<uint64_t>();
  } else if (v->is_string()) {
    std::string text = v->get<std::string>();
    uint64_t unit = 1;
    if (!text.empty()) {
      const char last = static_cast<char>(std::toupper(static_cast<unsigned char>(text.back())));
      unit = last == 'K' ? 1ull << 10 : last == 'M' ? 1ull << 20 : last == 'G' ? 1ull << 30 : 1;
      if (unit != 1) text.pop_back();
    }
    if (text.empty() || text.size() > 10 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(c); })) {
      reader.errors()->Add(reader.At(name), bad);
      return false;
    }
    value = std::stoull(text) * unit;
  }
  if (value < 1 || value > (uint64_t{8} << 30)) {
    reader.errors()->Add(reader.At(name), bad);
    return false;
  }
  *out = value;
  return true;
}

// A number (integer or not) from min to max.
bool Number(ObjectReader& reader, const std::string& name, double min, double max, double* out) {
  const json* v = reader.Get(name);
  if (v == nullptr) return false;
  if (!v->is_number() || v->get<double>() < min || v->get<double>() > max) {
    reader.errors()->Add(reader.At(name), fmt::format("must be a number from {} to {}, got {}", min,
                                                      max, v->dump()));
    return false;
  }
  *out = v->get<double>();
  return true;
}

// maxRestarts, and the restarts section: {retryExitCodes, backoffSeconds,
// backoffMaxSeconds, rejoinTimeoutSeconds}.
void ParseRestarts(ObjectReader& top, FieldErrors* errors, RestartPolicy* policy) {
  std::optional<int> max_restarts;
  if (top.Int("maxRestarts", 0, kMaxRestartsLimit, &max_restarts)) {
    policy->max_restarts = *max_restarts;
  }
  const json* restarts = top.Object("restarts");
  if (restarts == nullptr) return;
  ObjectReader r(*restarts, top.At("restarts"),
                 {"retryExitCodes", "backoffSeconds", "backoffMaxSeconds", "rejoinTimeoutSeconds"},
                 errors);
  if (const json* codes = r.Get("retryExitCodes")) {
    if (!codes->is_array()) {
      errors->Add(r.At("retryExitCodes"),
                  fmt::format("must be an array of exit codes, got {}", JsonTypeName(*codes)));
    } else {
      policy->retry_exit_codes.emplace();
      for (size_t i = 0; i < codes->size(); ++i) {
        const json& code = (*codes)[i];
        if (!code.is_number_integer() || code.get<int64_t>() < 1 || code.get<int64_t>() > 255) {
          errors->Add(fmt::format("{}/{}", r.At("retryExitCodes"), i),
                      fmt::format("must be an exit code from 1 to 255, got {}", code.dump()));
          continue;
        }
        policy->retry_exit_codes->push_back(code.get<int>());
      }
    }
  }
  Number(r, "backoffSeconds", 0, 86400, &policy->backoff_seconds);
  double rejoin = 0;
  if (Number(r, "rejoinTimeoutSeconds", 0, 86400, &rejoin)) policy->rejoin_timeout_seconds = rejoin;
  if (!Number(r, "backoffMaxSeconds", 0, 86400, &policy->backoff_max_seconds)) {
    // Only backoffSeconds given: the default maximum never cuts it short.
    policy->backoff_max_seconds = std::max(policy->backoff_max_seconds, policy->backoff_seconds);
  } else if (policy->backoff_max_seconds < policy->backoff_seconds) {
    errors->Add(r.At("backoffMaxSeconds"),
                fmt::format("{:g} is less than backoffSeconds {:g}", policy->backoff_max_seconds,
                            policy->backoff_seconds));
  }
}

// true, false or an object: whether the part is on, and the object when given.
const json* Switch(ObjectReader& reader, const std::string& name, bool* enabled) {
  const json* v = reader.Get(name);
  if (v == nullptr) return nullptr;
  if (v->is_boolean()) {
    *enabled = v->get<bool>();
    return nullptr;
  }
  if (!v->is_object()) {
    reader.errors()->Add(reader.At(name),
                         fmt::format("must be true, false or an object, got {}", JsonTypeName(*v)));
    return nullptr;
  }
  *enabled = true;
  return v;
}

// A path relative to the working directory that stays inside it.
bool InsideWorkdir(const std::string& value, const std::string& pointer, FieldErrors* errors) {
  if (!PathFits(value, pointer, errors)) return false;
  const fs::path path = fs::path(value).lexically_normal();
  if (path.empty() || path == "." || path.is_absolute() || *path.begin() == "..") {
    errors->Add(pointer,
                fmt::format("\"{}\" must be a folder inside the working directory", value));
    return false;
  }
  return true;
}

void ParseCheckpoints(ObjectReader& top, FieldErrors* errors, JobConfig* job) {
  CheckpointConfig& out = job->checkpoints;
  const json* object = Switch(top, "checkpoints", &out.enabled);
  if (top.String("resumeFrom", &job->resume_from)) {
    PathFits(job->resume_from, top.At("resumeFrom"), errors);
    out.enabled = true;
  }
  if (object == nullptr) return;
  ObjectReader c(*object, top.At("checkpoints"),
                 {"path", "uri", "quietPeriodSeconds", "keepLast", "maxUploadBytesPerSecond",
                  "scanIntervalSeconds"},
                 errors);
  if (c.String("path", &out.path)) InsideWorkdir(out.path, c.At("path"), errors);
  out.path = fs::path(out.path).lexically_normal().generic_string();
  while (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
  if (c.String("uri", &out.uri)) PathFits(out.uri, c.At("uri"), errors);
  Number(c, "quietPeriodSeconds", 0, 7 * 24 * 3600, &out.quiet_period_seconds);
  Number(c, "scanIntervalSeconds", 0.1, 3600, &out.scan_interval_seconds);
  std::optional<int> keep;
  if (c.Int("keepLast", 0, 1000000, &keep)) out.keep_last = *keep;
  ByteSize(c, "maxUploadBytesPerSecond", &out.max_upload_bytes_per_second);
}

void ParsePreemption(ObjectReader& top, const fs::path& base, FieldErrors* errors,
                     PreemptionConfig* out) {
  if (top.String("preemptionNoticeFile", &out->notice_file) &&
      PathFits(out->notice_file, top.At("preemptionNoticeFile"), errors)) {
    out->notice_file = (base / out->notice_file).lexically_normal().string();
  }
  const json* v = top.Get("preemptionNoticeUrl");
  if (v == nullptr) return;
  const std::string at = top.At("preemptionNoticeUrl");
  const json* object = nullptr;
  if (v->is_string()) {
    out->notice_url = v->get<std::string>();
  } else if (v->is_object()) {
    object = v;
  } else {
    errors->Add(at,
                fmt::format("must be a URL or an object with \"url\", got {}", JsonTypeName(*v)));
    return;
  }
  if (object != nullptr) {
    ObjectReader u(*object, at, {"url", "bodyContains", "headers", "intervalSeconds"}, errors);
    if (!u.String("url", &out->notice_url) && u.Get("url") == nullptr) {
      errors->Add(u.Pointer("url"), "is required");
    }
    u.String("bodyContains", &out->body_contains, /*allow_empty=*/true);
    std::optional<int> interval;
    if (u.Int("intervalSeconds", 1, 3600, &interval)) out->poll_interval_seconds = *interval;
    if (const json* headers = u.Object("headers")) {
      for (auto it = headers->begin(); it != headers->end(); ++it) {
        if (!it.value().is_string()) {
          errors->Add(u.At("headers") + "/" + JsonPointerToken(it.key()),
                      fmt::format("must be a string, got {}", JsonTypeName(it.value())));
          continue;
        }
        out->headers.emplace_back(it.key(), it.value().get<std::string>());
      }
    }
  }
  if (!out->notice_url.empty() && out->notice_url.rfind("http://", 0) != 0 &&
      out->notice_url.rfind("https://", 0) != 0) {
    errors->Add(object ? at + "/url" : at,
                fmt::format("\"{}\" must be an http:// or https:// URL", out->notice_url));
  }
}

void ParsePreflight(ObjectReader& top, FieldErrors* errors, PreflightConfig* out) {
  const json* preflight = Switch(top, "preflight", &out->enabled);
  if (preflight == nullptr) return;
  ObjectReader p(*preflight, top.At("preflight"), {"health", "nccl", "onNoGpu"}, errors);
  if (const json* health = Switch(p, "health", &out->health)) {
    out->health_thresholds_json = health->dump();
  }
  Choice<PreflightNoGpu>(p, "onNoGpu",
                         {{"fail", PreflightNoGpu::kFail}, {"skip", PreflightNoGpu::kSkip}},
                         &out->on_no_gpu);
  PreflightNcclConfig& nccl = out->nccl;
  const json* object = Switch(p, "nccl", &nccl.enabled);
  if (object == nullptr) return;
  ObjectReader n(*object, p.At("nccl"),
                 {"minBusBandwidthGBps", "timeoutSeconds", "minBytes", "maxBytes", "iterations",
                  "warmupIterations", "operations"},
                 errors);
  Number(n, "minBusBandwidthGBps", 0, 1e6, &nccl.min_bus_bandwidth_gbps);
  std::optional<int> value;
  if (n.Int("timeoutSeconds", 1, 24 * 3600, &value)) nccl.timeout_seconds = *value;
  if (n.Int("iterations", 1, 100000, &value)) nccl.iterations = *value;
  if (n.Int("warmupIterations", 0, 100000, &value)) nccl.warmup = *value;
  ByteSize(n, "minBytes", &nccl.min_bytes);
  ByteSize(n, "maxBytes", &nccl.max_bytes);
  if (nccl.min_bytes > nccl.max_bytes) {
    errors->Add(n.At("minBytes"),
                fmt::format("{} is more than maxBytes {}", nccl.min_bytes, nccl.max_bytes));
  }
  std::vector<std::string> ops;
  if (n.Scalars("operations", &ops)) {
    const std::vector<std::string> known = {"all_reduce", "all_gather", "reduce_scatter"};
    if (ops.empty()) errors->Add(n.At("operations"), "must name at least one collective");
    for (size_t i = 0; i < ops.size(); ++i) {
      if (std::find(known.begin(), known.end(), ops[i]) == known.end()) {
        errors->Add(fmt::format("{}/{}", n.At("operations"), i),
                    fmt::format("\"{}\" is not one of {}", ops[i], fmt::join(known, ", ")));
      }
    }
    nccl.operations = ops;
  }
}

// What each top-level section's parser reads from and writes to.
struct JobReader {
  ObjectReader& top;
  FieldErrors* errors;
  JobConfig* job;
  const fs::path& base;  // the job file's folder
  const AzureMlTranslation& azureml;
};

// script, command, arguments and sourceDirectory.
void ParseCommand(JobReader& r) {
  ObjectReader& top = r.top;
  FieldErrors& errors = *r.errors;
  JobConfig& job = *r.job;
  const fs::path& base = r.base;
  const bool script_fits =
      !top.String("script", &job.script) || PathFits(job.script, top.At("script"), &errors);
  top.Scalars("command", &job.command);
  if (!job.command.empty()) PathFits(job.command[0], top.At("command") + "/0", &errors);
  if (top.Get("command") != nullptr && job.command.empty() && top.Get("command")->is_array()) {
    errors.Add(top.At("command"), "must not be empty");
  }
  if (job.script.empty() && job.command.empty() && top.Get("script") == nullptr &&
      top.Get("command") == nullptr) {
    errors.Add("",
               "one of \"script\" (a Python file in sourceDirectory) or \"command\" "
               "(an argv array) is required");
  }
  if (!job.script.empty() && !job.command.empty()) {
    errors.Add(top.At("command"), "give \"script\" or \"command\", not both");
  }
  top.Scalars("arguments", &job.arguments);

  std::string source = ".";
  // RunConfiguration.save() puts NAME.runconfig in the project's .azureml/ (or older
  // aml_config/) folder, and the project is the source directory.
  const std::string folder = base.filename().string();
  if (r.azureml.azureml && (folder == ".azureml" || folder == "aml_config")) {
    source = base.parent_path().string();
  }
  top.String("sourceDirectory", &source);
  // The joined path is checked too: a relative sourceDirectory that fits may not
  // once the job file's folder is in front of it.
  if (PathFits(source, top.At("sourceDirectory"), &errors) &&
      PathFits((base / source).string(), top.At("sourceDirectory"), &errors)) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(base / source, ec);
    job.source_directory = ec ? (base / source).lexically_normal().string() : canonical.string();
    struct stat st {};
    if (stat(job.source_directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      errors.Add(top.At("sourceDirectory"),
                 fmt::format("\"{}\" is not a directory", job.source_directory));
    } else if (!job.script.empty() && script_fits) {
      fs::path script = fs::path(job.source_directory) / job.script;
      if (fs::path(job.script).is_absolute()) script = job.script;
      if (!PathFits(script.string(), top.At("script"), &errors)) {
        // Said above.
      } else if (!fs::is_regular_file(script, ec)) {
        errors.Add(top.At("script"), fmt::format("\"{}\" is not a file in sourceDirectory {}",
                                                 job.script, job.source_directory));
      }
    }
  }
}

// experimentName and runId.
void ParseNames(JobReader& r) {
  for (auto [name, out] :
       {std::pair{"experimentName", &r.job->experiment_name}, std::pair{"runId", &r.job->run_id}}) {
    if (r.top.String(name, out) && !IsValidRunName(*out)) {
      r.errors->Add(r.top.At(name),
                    fmt::format("\"{}\" must be 1-255 letters, digits, '_', '-' or '.', starting "
                                "with a letter or digit",
                                *out));
    }
  }
}

// communicator, nodeCount and rendezvous.
void ParseNodes(JobReader& r) {
  JobConfig& job = *r.job;
  Choice<Communicator>(r.top, "communicator",
                       {{"None", Communicator::kNone},
                        {"Mpi", Communicator::kMpi},
                        {"Nccl", Communicator::kNccl},
                        {"Gloo", Communicator::kGloo},
                        {"TensorFlow", Communicator::kTensorFlow},
                        {"ParameterServer", Communicator::kParameterServer}},
                       &job.communicator);
  std::optional<int> node_count;
  if (r.top.Int("nodeCount", 1, kMaxNodeCount, &node_count)) {
    job.node_count = *node_count;
    job.node_count_set = true;
  }
  if (const json* rendezvous = r.top.Object("rendezvous")) {
    ObjectReader reader(*rendezvous, r.top.At("rendezvous"), {"headHost", "timeoutSeconds"},
                        r.errors);
    reader.String("headHost", &job.rendezvous.head_host);
    reader.Int("timeoutSeconds", 1, 7 * 24 * 3600, &job.rendezvous.timeout_seconds);
  }
}

// processCountPerNode (or mpi's), gpusPerProcess, binding and maxRunDurationSeconds.
void ParseProcesses(JobReader& r) {
  ObjectReader& top = r.top;
  JobConfig& job = *r.job;
  top.Int("processCountPerNode", 1, kMaxProcessesPerNode, &job.process_count_per_node);
  if (const json* mpi = top.Object("mpi")) {
    ObjectReader mpi_reader(*mpi, top.At("mpi"), Known({"processCountPerNode"}, "/mpi"), r.errors);
    std::optional<int> count;
    if (mpi_reader.Int("processCountPerNode", 1, kMaxProcessesPerNode, &count)) {
      if (job.process_count_per_node && *job.process_count_per_node != *count) {
        r.errors->Add(mpi_reader.At("processCountPerNode"),
                      fmt::format("{} disagrees with /processCountPerNode {}", *count,
                                  *job.process_count_per_node));
      }
      job.process_count_per_node = count;
    }
  }
  top.Int("gpusPerProcess", 1, 64, &job.gpus_per_process);
  Choice<BindingPolicy>(top, "binding",
                        {{"auto", BindingPolicy::kAuto}, {"none", BindingPolicy::kNone}},
                        &job.binding);
  top.Int("maxRunDurationSeconds", 1, INT32_MAX, &job.max_run_duration_seconds);
}

// environment: its variables and python (python_env_spec.h).
void ParseEnvironment(JobReader& r) {
  const json* environment = r.top.Object("environment");
  if (environment == nullptr) return;
  JobConfig& job = *r.job;
  ObjectReader env(*environment, r.top.At("environment"),
                   Known({"environmentVariables", "python"}, "/environment"), r.errors);
  if (const json* vars = env.Object("environmentVariables")) {
    for (auto it = vars->begin(); it != vars->end(); ++it) {
      std::string at = env.At("environmentVariables") + "/" + it.key();
      if (!IsEnvName(it.key())) {
        r.errors->Add(at, "not a valid environment variable name");
      } else if (it.value().is_string()) {
        job.environment_variables.emplace_back(it.key(), it.value().get<std::string>());
      } else if (it.value().is_number() || it.value().is_boolean()) {
        job.environment_variables.emplace_back(it.key(), it.value().dump());
      } else {
        r.errors->Add(at, fmt::format("must be a string, got {}", JsonTypeName(it.value())));
      }
    }
  }
  if (const json* python = env.Object("python")) {
    ParsePythonSection(*python, env.At("python"), job.source_directory, &job.python, r.errors);
    job.interpreter_path = job.python.interpreter_path;
  }
}

// history: output collection, the folders watched, where it goes.
void ParseHistory(JobReader& r) {
  const json* history = r.top.Object("history");
  if (history == nullptr) return;
  HistoryConfig& out = r.job->history;
  ObjectReader h(*history, r.top.At("history"),
                 Known({"outputCollection", "directoriesToWatch", "uri"}, "/history"), r.errors);
  h.Bool("outputCollection", &out.output_collection);
  h.Scalars("directoriesToWatch", &out.directories_to_watch);
  for (size_t i = 0; i < out.directories_to_watch.size(); ++i) {
    const fs::path dir(out.directories_to_watch[i]);
    const std::string at = fmt::format("{}/{}", h.At("directoriesToWatch"), i);
    if (!PathFits(dir.string(), at, r.errors)) continue;
    if (dir.empty() || dir.is_absolute() || *dir.begin() == "..") {
      r.errors->Add(
          at, fmt::format("\"{}\" must be a path inside the working directory", dir.string()));
    }
  }
  if (h.String("uri", &out.uri)) PathFits(out.uri, h.At("uri"), r.errors);
}

// One part of the job file: the top-level names it reads, and its parser.
struct Section {
  std::vector<std::string> names;
  void (*parse)(JobReader&);
};

// The top level knows exactly these names (and Azure ML's), and the parsers run in
// this order: sourceDirectory is read before environment, whose conda file is
// read from it.
const Section kSections[] = {
    {{"script", "command", "arguments", "sourceDirectory"}, ParseCommand},
    {{"experimentName", "runId"}, ParseNames},
    {{"communicator", "nodeCount", "rendezvous"}, ParseNodes},
    {{"mpi", "processCountPerNode", "gpusPerProcess", "binding", "maxRunDurationSeconds"},
     ParseProcesses},
    {{"environment"}, ParseEnvironment},
    {{"data"},
     [](JobReader& r) {
       if (const json* data = r.top.Object("data")) {
         ParseData(*data, r.top.At("data"), r.errors, &r.job->data);
       }
     }},
    {{"history"}, ParseHistory},
    {{"preflight"}, [](JobReader& r) { ParsePreflight(r.top, r.errors, &r.job->preflight); }},
    {{"tensorflow"},
     [](JobReader& r) {
       if (const json* tensorflow = r.top.Get("tensorflow")) {
         ParseTensorFlowSection(*tensorflow, r.top.At("tensorflow"), &r.job->tensorflow, r.errors);
       }
     }},
    {{"maxRestarts", "restarts"},
     [](JobReader& r) { ParseRestarts(r.top, r.errors, &r.job->restarts); }},
    {{"checkpoints", "resumeFrom"}, [](JobReader& r) { ParseCheckpoints(r.top, r.errors, r.job); }},
    {{"preemptionNoticeFile", "preemptionNoticeUrl"},
     [](JobReader& r) { ParsePreemption(r.top, r.base, r.errors, &r.job->preemption); }},
};

// Azure ML's defaults for a file written for it, and what the translation found.
void ApplyAzureMl(const AzureMlTranslation& azureml, JobConfig* job) {
  AzureMlJob& out = job->azureml;
  out.recognised = azureml.azureml;
  out.recognised_by = azureml.recognised_by;
  out.notes = azureml.notes;
  out.shm_size_bytes = azureml.shm_size_bytes;
  out.shm_size_text = azureml.shm_size_text;
  out.shm_size_field = azureml.shm_size_pointer;
  out.use_gpu = azureml.use_gpu;
  if (!out.recognised) return;
  const bool count_given = job->process_count_per_node.has_value();
  // ParameterServer: each node runs its share of tensorflow's roles (tf_roles.h),
  // which a default of 1 per node would contradict.
  if (job->communicator == Communicator::kParameterServer) return;
  if (!count_given) job->process_count_per_node = 1;
  if (!azureml.gpus_per_process_given && !job->gpus_per_process &&
      job->process_count_per_node == 1) {
    job->gpus_per_process = 0;
    out.notes.push_back(fmt::format(
        "Azure ML job file (recognised by {}): {}1 process per node with all of the node's "
        "GPUs, as Azure ML runs it; processCountPerNode and gpusPerProcess change that",
        out.recognised_by, count_given ? "processCountPerNode 1: " : ""));
  }
}

}  // namespace

std::string_view CommunicatorName(Communicator c) {
  switch (c) {
    case Communicator::kNone: return "None";
    case Communicator::kMpi: return "Mpi";
    case Communicator::kNccl: return "Nccl";
    case Communicator::kGloo: return "Gloo";
    case Communicator::kTensorFlow: return "TensorFlow";
    case Communicator::kParameterServer: return "ParameterServer";
  }
  return "None";
}

std::string_view DataMechanismName(DataMechanism m) {
  switch (m) {
    case DataMechanism::kMount: return "mount";
    case DataMechanism::kDownload: return "download";
    case DataMechanism::kDirect: return "direct";
  }
  return "mount";
}

bool IsValidRunName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

Result<JobConfig> ParseJobFile(const std::string& path) {
  Status fits = CheckPathLength(path);
  if (!fits.ok()) return InvalidArgumentError(fmt::format("job file: {}", fits.message()));
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("job file {}", path));
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, fmt::format("job file {}", path));
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)                          ? "a directory"
                       : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                       : S_ISSOCK(st.st_mode)                       ? "a socket"
                                                                    : "not a file";
    return InvalidJobError(
        fmt::format("{}: the job file must be a regular file, this is {}", path, kind));
  }
  const auto too_big = [&](uint64_t bytes) {
    return InvalidJobError(fmt::format("{}: the job file has {} bytes; it may have at most {}",
                                       path, bytes, kMaxJobFileBytes));
  };
  if (static_cast<uint64_t>(st.st_size) > kMaxJobFileBytes) return too_big(st.st_size);
  // Read one byte past the limit, so a file that grew since fstat is caught too. The
  // buffer starts at the file's size and grows only if the file did: one of the limit's
  // size, zero-filled, was 4 MiB of trainrun's memory at every start.
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  while (got < kMaxJobFileBytes + 1) {
    if (got == text.size()) text.resize(std::min(text.size() * 2, kMaxJobFileBytes + 1));
    const ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, fmt::format("job file {}", path));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxJobFileBytes) return too_big(got);
  text.resize(got);
  return ParseJobText(text, path);
}

Result<JobConfig> ParseJobText(const std::string& text, const std::string& path) {
  if (text.size() > kMaxJobFileBytes) {
    return InvalidJobError(fmt::format("{}: the job file has {} bytes; it may have at most {}",
                                       path, text.size(), kMaxJobFileBytes));
  }
  nlohmann::ordered_json doc;
  std::map<std::string, int> yaml_lines;
  if (LooksLikeYaml(path, text)) {
    YamlDocument yaml;
    Status parsed = YamlToJson(text, kMaxJobNestingDepth, &yaml);
    if (!parsed.ok()) return InvalidJobError(fmt::format("{}:{}", path, parsed.message()));
    doc = std::move(yaml.json);
    yaml_lines = std::move(yaml.lines);
    if (!doc.is_object()) {
      return InvalidJobError(fmt::format("{}: the job file must be a YAML mapping, got {}", path,
                                         JsonTypeName(json::parse(doc.dump()))));
    }
  }
  JsonDepthCheck depth(kMaxJobNestingDepth);
  if (yaml_lines.empty() && !json::sax_parse(text, &depth)) {
    if (depth.too_deep()) {
      return InvalidJobError(fmt::format(
          "{}:{}: arrays and objects are nested more than {} levels deep", path,
          LineColumn(text, OffsetOfDepth(text, kMaxJobNestingDepth + 1)), kMaxJobNestingDepth));
    }
    // nlohmann counts the offending byte from 1.
    const size_t offset = depth.error_position() == 0 ? 0 : depth.error_position() - 1;
    std::string what = depth.error();
    size_t start = what.find("syntax error");
    if (start == std::string::npos)
      start = what.find("] ") == std::string::npos ? 0 : what.find("] ") + 2;
    return InvalidJobError(fmt::format("{}:{}: not valid JSON: {}", path, LineColumn(text, offset),
                                       what.substr(start)));
  }
  if (yaml_lines.empty()) {
    try {
      doc = nlohmann::ordered_json::parse(text);
    } catch (const json::exception& e) {
      return InvalidJobError(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    if (!doc.is_object()) {
      return InvalidJobError(fmt::format("{}: the job file must be a JSON object, got {}", path,
                                         JsonTypeName(json::parse(doc.dump()))));
    }
  }

  FieldErrors errors;
  JobConfig job;
  job.file = path;
  job.json = doc.dump();
  // Azure ML's fields become trainrun's (or notes, or errors) before trainrun's reader.
  AzureMlTranslation azureml;
  TranslateAzureMl(path, &doc, &azureml);
  for (const auto& [pointer, message] : azureml.errors) errors.Add(pointer, message);
  json root = json::parse(doc.dump());
  std::error_code ec;
  fs::path absolute = fs::absolute(fs::path(path), ec);
  const fs::path base = (ec ? fs::path(path) : absolute).parent_path();

  std::vector<std::string> names;
  for (const Section& section : kSections) {
    names.insert(names.end(), section.names.begin(), section.names.end());
  }
  ObjectReader top(root, "", Known(names, ""), &errors);
  JobReader reader{top, &errors, &job, base, azureml};
  for (const Section& section : kSections) section.parse(reader);

  // Placeholders are checked now so a typo fails before anything starts.
  std::vector<std::string> data_names;
  for (const DataReference& d : job.data) data_names.push_back(d.name);
  auto check = [&](const std::vector<std::string>& items, const std::string& field) {
    for (size_t i = 0; i < items.size(); ++i) {
      Status s = CheckPlaceholders(items[i], data_names);
      if (!s.ok()) errors.Add(fmt::format("{}/{}", top.At(field), i), s.message());
    }
  };
  check(job.arguments, "arguments");
  check(job.command, "command");

  ApplyAzureMl(azureml, &job);

  if (!errors.empty()) return JobErrorsStatus(errors, path, yaml_lines, azureml.renamed);
  return job;
}

}  // namespace trainrun
