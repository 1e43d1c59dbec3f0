// Azure ML run configurations as trainrun job files.
//
// Azure ML's RunConfiguration (as `RunConfiguration.save()` writes it, JSON or YAML)
// and the Estimator / ScriptRunConfig parameters people put in job files have fields
// trainrun does not have. TranslateAzureMl() rewrites a parsed job file, before
// trainrun's own reader sees it, so that each of those fields is one of:
//   honoured    left in place for the reader (script, nodeCount, docker.shmSize, ...);
//   translated  rewritten into trainrun's field, with a note saying into what
//               (entry_script -> script, script_params -> arguments, ...);
//   ignored     removed, with a note: it belongs to the service (the compute target,
//               the image to build, the workspace);
//   refused     an error with the reason (a registered dataset, outputData, PySpark).
// kAzureMlFields is that list; README "Run configurations" shows it as a table.
// Field names match case-insensitively and with or without '_' (Azure ML saves
// camelCase and reads snake_case too): `entry_script` is `entryScript`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace trainrun {

enum class AzureMlTreatment { kHonoured, kTranslated, kIgnored, kRefused, kElsewhere };

struct AzureMlField {
  // A JSON pointer; "*" stands for any name (a data reference).
  const char* pointer;
  AzureMlTreatment treatment;
  // What trainrun does with it (the README table's last column).
  const char* what;
};

// Every field of Azure ML's RunConfiguration schema (azureml-core 1.x runconfig.py
// and environment.py) and of the Estimator / ScriptRunConfig parameters, in the
// README's order. kElsewhere: accepted here and read by another part of trainrun
// (Python environments, TensorFlow roles).
const std::vector<AzureMlField>& AzureMlFields();

// `name` as field names are compared: lower case, without '_'.
std::string FieldKey(std::string_view name);

// The Azure ML names a JSON object at `pointer` may hold besides trainrun's own
// ("" is the top level, "/data/*" a data reference), for "did you mean" suggestions
// and the list of known fields.
std::vector<std::string> AzureMlNamesAt(const std::string& pointer);

// What TranslateAzureMl() found.
struct AzureMlTranslation {
  // The file is written for Azure ML, and gets Azure ML's defaults: its name ends in
  // .runconfig, or it has a field trainrun's own job files do not have.
  bool azureml = false;
  std::string recognised_by;  // ".runconfig" or the first such field's pointer
  // One line per translated or ignored field, "/pointer: what happened".
  std::vector<std::string> notes;
  // {pointer, message} for refused fields and values that cannot be translated.
  std::vector<std::pair<std::string, std::string>> errors;
  // Pointers of translated fields as trainrun's reader sees them, and as the file
  // spells them ("/script" -> "/entry_script"), so later errors name what was written.
  std::vector<std::pair<std::string, std::string>> renamed;
  // The file gives gpusPerProcess (the reader says whether it gives a process count).
  bool gpus_per_process_given = false;
  // docker.shmSize (or Estimator shm_size), in bytes, and the field that gave it.
  std::optional<uint64_t> shm_size_bytes;
  std::string shm_size_pointer;
  std::string shm_size_text;
  // useGpu / use_gpu.
  std::optional<bool> use_gpu;
};

// Rewrites `doc` (the whole job file) in place as described above. `path` is the job
// file's name (its extension counts). Never throws.
void TranslateAzureMl(const std::string& path, nlohmann::ordered_json* doc,
                      AzureMlTranslation* out);

// Docker's shm size syntax: digits with an optional b, k, m or g (binary units),
// case-insensitive ("2g" is 2 GiB); nullopt when it is not one.
std::optional<uint64_t> ParseDockerSize(std::string_view text);

// The warning when the file system at `shm_path` (normally /dev/shm) is smaller than
// `wanted` bytes, naming `field` and the sizes; "" when it is large enough or cannot be
// measured (then `error` says why, when given).
std::string CheckShmSize(uint64_t wanted, const std::string& field, const std::string& shm_path,
                         std::string* error = nullptr);

}  // namespace trainrun
