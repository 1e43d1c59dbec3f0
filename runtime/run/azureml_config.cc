#include "runtime/run/azureml_config.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include "base/field_suggest.h"
#include "base/text.h"

namespace trainrun {
namespace {

using ojson = nlohmann::ordered_json;
using T = AzureMlTreatment;

// The service's part: what trainrun says when it leaves a field out.
constexpr const char* kTarget = "the compute target: trainrun runs on the node that started it";
constexpr const char* kImage =
    "the image is built and started by whoever starts trainrun (the scheduler, "
    "podman, docker)";
constexpr const char* kWorkspace = "names an environment in an Azure ML workspace";

// clang-format off
const std::vector<AzureMlField> kFields = {
  // RunConfiguration (azureml.core.runconfig), in the order Azure ML saves it.
  {"/script", T::kHonoured, "the Python file to run, in sourceDirectory"},
  {"/arguments", T::kHonoured, "appended to the command; placeholders work"},
  {"/target", T::kIgnored, kTarget},
  {"/framework", T::kIgnored, "`Python`, `PyTorch`, `TensorFlow`, `CNTK` only pick Azure ML's image; `PySpark` is refused (trainrun has no spark-submit)"},
  {"/communicator", T::kTranslated, "`None`, `Mpi`, `Nccl`, `Gloo`, `TensorFlow` as is; `OpenMpi` and `IntelMpi` become `Mpi` (Open MPI's mpirun); `ParameterServer`: see *Parameter servers and TensorFlow roles*"},
  {"/maxRunDurationSeconds", T::kHonoured, "stop the ranks after this long, exit 124; null: no limit"},
  {"/nodeCount", T::kHonoured, "nodes in the job"},
  {"/priority", T::kIgnored, "the job's priority is the scheduler's"},
  {"/identity", T::kIgnored, "the managed identity of Azure ML compute; ranks use the credentials in the node's environment"},
  {"/environment/name", T::kIgnored, kWorkspace},
  {"/environment/version", T::kIgnored, kWorkspace},
  {"/environment/assetId", T::kIgnored, kWorkspace},
  {"/environment/inferencingStackVersion", T::kIgnored, "for Azure ML's inference images"},
  {"/environment/autoRebuild", T::kIgnored, "rebuilds Azure ML's image"},
  {"/environment/environmentVariables", T::kHonoured, "variables for every rank"},
  {"/environment/python/interpreterPath", T::kHonoured, "the interpreter for `script` (Azure ML saves `python`, which must then be on PATH)"},
  {"/environment/python/userManagedDependencies", T::kElsewhere, "see *Dependencies*"},
  {"/environment/python/condaDependencies", T::kElsewhere, "see *Dependencies*"},
  {"/environment/python/condaDependenciesFile", T::kElsewhere, "see *Dependencies*"},
  {"/environment/python/baseCondaEnvironment", T::kElsewhere, "see *Dependencies*"},
  {"/environment/docker/enabled", T::kIgnored, kImage},
  {"/environment/docker/baseImage", T::kIgnored, kImage},
  {"/environment/docker/baseDockerfile", T::kIgnored, kImage},
  {"/environment/docker/buildContext", T::kIgnored, kImage},
  {"/environment/docker/baseImageRegistry", T::kIgnored, kImage},
  {"/environment/docker/platform", T::kIgnored, kImage},
  {"/environment/docker/sharedVolumes", T::kIgnored, kImage},
  {"/environment/docker/arguments", T::kIgnored, "`docker run`'s arguments are the scheduler's"},
  {"/environment/docker/gpuSupport", T::kIgnored, kImage},
  {"/environment/docker/shmSize", T::kHonoured, "checked against /dev/shm (below); /docker/shmSize wins when both are given"},
  {"/environment/spark", T::kIgnored, "Spark packages for PySpark on Azure ML compute"},
  {"/environment/databricks", T::kIgnored, "libraries for Azure Databricks compute"},
  {"/environment/r", T::kIgnored, "R packages installed by Azure ML's image build"},
  {"/history/outputCollection", T::kHonoured, "upload ./outputs"},
  {"/history/snapshotProject", T::kIgnored, "trainrun always runs a fresh copy of sourceDirectory and keeps no snapshot in history"},
  {"/history/directoriesToWatch", T::kHonoured, "more folders to upload while the run runs"},
  {"/history/ambientAuthentication", T::kIgnored, "workspace credentials for the run"},
  {"/history/enableMLflowTracking", T::kElsewhere, "see *Metrics*"},
  {"/spark", T::kIgnored, "Spark settings for PySpark on Azure ML compute"},
  {"/docker/useDocker", T::kIgnored, kImage},
  {"/docker/sharedVolumes", T::kIgnored, kImage},
  {"/docker/arguments", T::kIgnored, "`docker run`'s arguments are the scheduler's"},
  {"/docker/shmSize", T::kHonoured, "checked against /dev/shm's size: a warning when /dev/shm is smaller (trainrun cannot resize it inside a container)"},
  {"/hdi", T::kIgnored, "HDInsight compute"},
  {"/tensorflow/workerCount", T::kElsewhere, "see *Parameter servers and TensorFlow roles*"},
  {"/tensorflow/parameterServerCount", T::kElsewhere, "see *Parameter servers and TensorFlow roles*"},
  {"/mpi/processCountPerNode", T::kHonoured, "ranks on each node"},
  {"/mpi/nodeCount", T::kTranslated, "to `nodeCount` (an error when they disagree)"},
  {"/pytorch/communicationBackend", T::kTranslated, "to `communicator` (`Nccl`, `Gloo`) when `framework` is `PyTorch` and no other communicator is given; else ignored"},
  {"/pytorch/processCount", T::kTranslated, "the job's total: `processCountPerNode` = processCount / nodeCount (an error when it does not divide or disagrees)"},
  {"/pytorch/nodeCount", T::kTranslated, "to `nodeCount` (an error when they disagree)"},
  {"/paralleltask", T::kIgnored, "ParallelRunStep's settings"},
  {"/dataReferences/*", T::kTranslated, "to `data.<name>`: `dataStoreName` through `datastores` plus `pathOnDataStore`, `mode` mount/download as `mechanism`, `pathOnCompute`, `overwrite`; mode `upload`, or a datastore not in `datastores`, is refused"},
  {"/data/*/dataLocation/uri", T::kTranslated, "a string as is; Azure ML's `{path, isFile}` becomes its path"},
  {"/data/*/dataLocation/dataPath", T::kTranslated, "to `uri`: the datastore's URI from `datastores` joined with `relativePath`; refused when the datastore is not in `datastores`"},
  {"/data/*/dataLocation/dataset", T::kRefused, "a registered dataset lives in an Azure ML workspace, which trainrun cannot read: give `dataLocation.uri` or `dataPath`"},
  {"/data/*/mechanism", T::kHonoured, "`mount`, `download`, `direct` in any case; `upload` and `hdfs` are refused"},
  {"/data/*/environmentVariableName", T::kHonoured, "an extra variable with the path"},
  {"/data/*/pathOnCompute", T::kHonoured, "where the data appears"},
  {"/data/*/overwrite", T::kHonoured, "for download"},
  {"/data/*/createOutputDirectories", T::kIgnored, "for output data, which trainrun uploads from ./outputs"},
  {"/data/*/options", T::kIgnored, "Azure ML's mount options"},
  {"/datacaches", T::kIgnored, "workspace datacaches"},
  {"/outputData", T::kRefused, "trainrun uploads ./outputs to run history, not to datastores: write outputs there (an empty object is fine)"},
  {"/sourceDirectoryDataStore", T::kIgnored, "trainrun copies sourceDirectory itself"},
  {"/amlcompute", T::kIgnored, "creates Azure ML compute"},
  {"/kubernetescompute", T::kIgnored, "Azure ML's Kubernetes compute"},
  {"/credentialPassthrough", T::kIgnored, "ranks use the credentials in the node's environment"},
  {"/command", T::kTranslated, "an argv array as is; a string runs as `/bin/sh -c STRING` (Azure ML runs it in a shell); an empty string is no command"},
  {"/environmentVariables", T::kTranslated, "to `environment.environmentVariables` (a name in both is an error)"},
  {"/applicationEndpoints", T::kIgnored, "Jupyter, SSH and TensorBoard endpoints of Azure ML compute"},
  // Estimator and ScriptRunConfig parameters (snake_case in Python).
  {"/sourceDirectory", T::kHonoured, "copied fresh for every run"},
  {"/entryScript", T::kTranslated, "to `script`"},
  {"/scriptParams", T::kTranslated, "to `arguments`: an object gives `key value` in the order written, an empty string or null value a bare flag; an array as is"},
  {"/processCountPerNode", T::kHonoured, "ranks on each node"},
  {"/distributedTraining", T::kTranslated, "to `communicator` (and `mpi`, `pytorch`, `tensorflow`): a name (`Mpi`, `Nccl`, `Gloo`, `PyTorch`, `TensorFlow`, `ParameterServer`) or an object with `type` and that configuration's fields (`processCountPerNode`, `nodeCount`, `communicationBackend`, `processCount`, `workerCount`, `parameterServerCount`)"},
  {"/distributedJobConfig", T::kTranslated, "as `distributedTraining` (ScriptRunConfig's name)"},
  {"/useGpu", T::kHonoured, "`false`: the ranks see no GPU (`CUDA_VISIBLE_DEVICES` empty unless the job sets it); `true`: a warning when the node has none"},
  {"/shmSize", T::kTranslated, "to `docker.shmSize`"},
  {"/dockerRuntimeConfig", T::kTranslated, "to `docker` (ScriptRunConfig's name)"},
  {"/computeTarget", T::kIgnored, kTarget},
  {"/vmSize", T::kIgnored, kTarget},
  {"/vmPriority", T::kIgnored, kTarget},
  {"/useDocker", T::kIgnored, kImage},
  {"/customDockerImage", T::kIgnored, kImage},
  {"/customDockerBaseImage", T::kIgnored, kImage},
  {"/imageRegistryDetails", T::kIgnored, kImage},
  {"/frameworkVersion", T::kIgnored, "only picks Azure ML's image"},
  {"/environmentDefinition", T::kRefused, "write its fields under `environment`"},
  {"/inputs", T::kRefused, "give each input as `data.<name>` (an empty list is fine)"},
  {"/userManaged", T::kTranslated, "to `environment.python.userManagedDependencies` (see *Dependencies*)"},
  {"/condaPackages", T::kTranslated, "to `environment.python.condaPackages` (see *Dependencies*)"},
  {"/pipPackages", T::kTranslated, "to `environment.python.pipPackages` (see *Dependencies*)"},
  {"/condaDependenciesFilePath", T::kTranslated, "to `environment.python.condaDependenciesFile` (see *Dependencies*)"},
  {"/pipRequirementsFilePath", T::kTranslated, "`requirements.txt` (of `sourceDirectory`) to `environment.python.userManagedDependencies` false, which installs it; another name is refused: rename the file"},
};
// clang-format on

// Fields trainrun's own job files have too: they alone do not make a file Azure ML's.
bool SharedWithTrainrun(const std::string& pointer) {
  static const std::vector<std::string> kShared = {
      "/script",
      "/arguments",
      "/communicator",
      "/maxRunDurationSeconds",
      "/nodeCount",
      "/environment/environmentVariables",
      "/environment/python/interpreterPath",
      "/history/outputCollection",
      "/history/directoriesToWatch",
      "/mpi/processCountPerNode",
      "/data/*/dataLocation/uri",
      "/data/*/mechanism",
      "/data/*/environmentVariableName",
      "/data/*/pathOnCompute",
      "/data/*/overwrite",
      "/command",
      "/sourceDirectory",
      "/processCountPerNode",
  };
  return std::find(kShared.begin(), kShared.end(), pointer) != kShared.end();
}

// "/name" as a JSON pointer's step.
std::string Token(std::string_view name) { return fmt::format("/{}", JsonPointerToken(name)); }

std::vector<std::string> SplitPointer(const std::string& pointer) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= pointer.size()) {
    size_t slash = pointer.find('/', start);
    if (slash == std::string::npos) slash = pointer.size();
    parts.push_back(pointer.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// The member of `object` named `name` as fields are compared, or end().
ojson::iterator Find(ojson& object, std::string_view name) {
  if (!object.is_object()) return object.end();
  const std::string key = FieldKey(name);
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (FieldKey(it.key()) == key) return it;
  }
  return object.end();
}

ojson* Member(ojson& object, std::string_view name) {
  auto it = Find(object, name);
  return it == object.end() ? nullptr : &it.value();
}

// Whether a value says anything: not null, not empty, and for an object, a member that
// does (Azure ML saves every section, mostly with nulls).
bool Present(const ojson& value) {
  if (value.is_null()) return false;
  if (value.is_string()) return !value.get<std::string>().empty();
  if (value.is_array()) return !value.empty();
  if (value.is_object()) {
    return std::any_of(value.begin(), value.end(), [](const ojson& v) { return Present(v); });
  }
  return true;
}

std::string Spell(const ojson& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// Calls `visit(parent, key, pointer)` for each member `pointer` ("*": any name) names,
// with the pointer as the file spells it.
void Resolve(ojson& node, const std::vector<std::string>& parts, size_t i,
             const std::string& spelled,
             const std::function<void(ojson&, const std::string&, const std::string&)>& visit) {
  if (!node.is_object() || i >= parts.size()) return;
  std::vector<std::string> keys;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (parts[i] == "*" || FieldKey(it.key()) == FieldKey(parts[i])) keys.push_back(it.key());
  }
  for (const std::string& key : keys) {
    const std::string at = spelled + Token(key);
    if (i + 1 == parts.size()) {
      visit(node, key, at);
    } else {
      Resolve(node[key], parts, i + 1, at, visit);
    }
  }
}

class Translator {
 public:
  Translator(ojson* doc, AzureMlTranslation* out) : doc_(*doc), out_(out) {}

  void Run(const std::string& path) {
    Recognise(path);
    ReadDatastores();
    Framework();
    IgnoreAndRefuse();
    EntryScript();
    ScriptParams();
    Command();
    Communicator();
    Distributed("distributedTraining");
    Distributed("distributedJobConfig");
    MpiNodeCount();
    PyTorch();
    EnvironmentVariables();
    Docker();
    UseGpu();
    EstimatorPackages();
    DataReferences();
    Data();
    out_->gpus_per_process_given = Member(doc_, "gpusPerProcess") != nullptr;
  }

 private:
  void Error(const std::string& pointer, std::string message) {
    out_->errors.emplace_back(pointer, std::move(message));
  }
  void Note(const std::string& pointer, std::string message) {
    out_->notes.push_back(fmt::format("{}: {}", pointer, message));
  }
  std::string At(const std::string& name) {
    auto it = Find(doc_, name);
    return Token(it == doc_.end() ? name : it.key());
  }
  // Removes the top-level member `name`.
  void Erase(ojson& object, std::string_view name) {
    auto it = Find(object, name);
    if (it != object.end()) object.erase(it.key());
  }
  // Sets `name` (trainrun's spelling) unless the file gives it: then they must agree.
  bool Put(ojson& object, const std::string& name, const ojson& value, const std::string& from,
           const std::string& object_pointer) {
    auto it = Find(object, name);
    if (it != object.end() && !it.value().is_null()) {
      if (FieldKey(Spell(it.value())) != FieldKey(Spell(value))) {
        Error(from, fmt::format("{} disagrees with {}/{} {}", Spell(value), object_pointer,
                                it.key(), Spell(it.value())));
        return false;
      }
      return true;
    }
    if (it != object.end()) object.erase(it.key());
    object[name] = value;
    return true;
  }
  // Errors for the members of a section this pass reads whole that are not `known`.
  void RejectRest(const ojson& section, const std::string& pointer,
                  const std::vector<std::string>& known) {
    for (auto it = section.begin(); it != section.end(); ++it) {
      bool ok = false;
      for (const std::string& k : known) ok = ok || FieldKey(k) == FieldKey(it.key());
      if (ok) continue;
      const std::string hint = NearestName(it.key(), known);
      Error(pointer + Token(it.key()),
            hint.empty()
                ? fmt::format("unknown field; known fields here are {}", fmt::join(known, ", "))
                : fmt::format("unknown field; did you mean \"{}\"?", hint));
    }
  }

  void Recognise(const std::string& path) {
    const std::string ext = ".runconfig";
    if (path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0) {
      out_->azureml = true;
      out_->recognised_by = "the name ending in .runconfig";
      return;
    }
    for (const AzureMlField& field : kFields) {
      if (SharedWithTrainrun(field.pointer) || field.treatment == T::kElsewhere) continue;
      std::string found;
      Resolve(doc_, SplitPointer(field.pointer), 0, "",
              [&](ojson&, const std::string&, const std::string& at) {
                if (found.empty()) found = at;
              });
      if (!found.empty()) {
        out_->azureml = true;
        out_->recognised_by = found;
        return;
      }
    }
  }

  void ReadDatastores() {
    auto it = Find(doc_, "datastores");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    if (!it.value().is_object()) {
      Error(at, fmt::format("must be an object of datastore names and URIs, got {}",
                            JsonTypeName(nlohmann::json::parse(it.value().dump()))));
    } else {
      for (auto d = it.value().begin(); d != it.value().end(); ++d) {
        if (!d.value().is_string() || d.value().get<std::string>().empty()) {
          Error(at + Token(d.key()), "must be a URI (az://ACCOUNT/CONTAINER, s3://BUCKET, a path)");
          continue;
        }
        datastores_.emplace_back(d.key(), d.value().get<std::string>());
      }
    }
    doc_.erase(it.key());
  }

  // The datastore's URI joined with `relative`, or "" with an error at `pointer`.
  std::string Datastore(const std::string& name, const std::string& relative,
                        const std::string& pointer) {
    for (const auto& [store, uri] : datastores_) {
      if (store != name) continue;
      std::string base = uri;
      while (base.size() > 1 && base.back() == '/') base.pop_back();
      std::string rest = relative;
      while (!rest.empty() && rest.front() == '/') rest.erase(0, 1);
      return rest.empty() ? base : base + "/" + rest;
    }
    Error(pointer, fmt::format("datastore \"{}\" is an Azure ML workspace's, which trainrun cannot "
                               "resolve; name its URI in \"datastores\": {{\"{}\": "
                               "\"az://ACCOUNT/CONTAINER\"}}, or give dataLocation.uri",
                               name, name));
    return "";
  }

  void Framework() {
    auto it = Find(doc_, "framework");
    if (it == doc_.end() || !it.value().is_string()) return;
    framework_ = ToLower(it.value().get<std::string>());
    if (framework_ == "pyspark") {
      Error(Token(it.key()),
            "\"PySpark\" jobs run through spark-submit on Spark compute, which trainrun does "
            "not have; run a Python script (framework \"Python\")");
      doc_.erase(it.key());
    }
  }

  void IgnoreAndRefuse() {
    for (const AzureMlField& field : kFields) {
      if (field.treatment != T::kIgnored && field.treatment != T::kRefused) continue;
      if (std::string_view(field.pointer) == "/data/*/dataLocation/dataset") continue;  // Data()
      Resolve(doc_, SplitPointer(field.pointer), 0, "",
              [&](ojson& parent, const std::string& key, const std::string& at) {
                if (Present(parent[key])) {
                  if (field.treatment == T::kRefused) {
                    Error(at, fmt::format("not supported: {}", field.what));
                  } else {
                    Note(at, fmt::format("ignored: {}", field.what));
                  }
                }
                parent.erase(key);
              });
    }
  }

  void EntryScript() {
    auto it = Find(doc_, "entryScript");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson value = it.value();
    doc_.erase(it.key());
    if (Member(doc_, "script") && Present(*Member(doc_, "script"))) {
      Error(at, "give \"script\" or \"entry_script\", not both");
      return;
    }
    Erase(doc_, "script");
    doc_["script"] = value;
    out_->renamed.emplace_back("/script", at);
    Note(at, "translated to script");
  }

  void ScriptParams() {
    auto it = Find(doc_, "scriptParams");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson params = it.value();
    doc_.erase(it.key());
    if (params.is_null()) return;
    if (Member(doc_, "arguments") && Present(*Member(doc_, "arguments"))) {
      Error(at, "give \"arguments\" or \"script_params\", not both");
      return;
    }
    ojson arguments = ojson::array();
    if (params.is_array()) {
      arguments = params;
    } else if (params.is_object()) {
      for (auto p = params.begin(); p != params.end(); ++p) {
        arguments.push_back(p.key());
        const ojson& v = p.value();
        if (v.is_null() || (v.is_string() && v.get<std::string>().empty())) continue;
        if (v.is_string() || v.is_number() || v.is_boolean()) {
          arguments.push_back(v);
        } else {
          Error(at + Token(p.key()),
                fmt::format("must be a string, a number, or empty for a bare flag, got {}",
                            JsonTypeName(nlohmann::json::parse(v.dump()))));
        }
      }
    } else {
      Error(at, fmt::format("must be an object (\"--flag\": value) or an array, got {}",
                            JsonTypeName(nlohmann::json::parse(params.dump()))));
      return;
    }
    Erase(doc_, "arguments");
    doc_["arguments"] = arguments;
    out_->renamed.emplace_back("/arguments", at);
    Note(at, fmt::format("translated to arguments {}", arguments.dump()));
  }

  void Command() {
    auto it = Find(doc_, "command");
    if (it == doc_.end() || !it.value().is_string()) return;
    const std::string at = Token(it.key());
    const std::string command = it.value().get<std::string>();
    if (command.empty()) {
      doc_.erase(it.key());  // Azure ML saves "" when the job runs `script`
      return;
    }
    if (Member(doc_, "arguments") && Present(*Member(doc_, "arguments"))) {
      Error(at, "a command string takes no \"arguments\": write them into the string");
    }
    it.value() = ojson::array({"/bin/sh", "-c", command});
    Note(at,
         "translated to command [\"/bin/sh\", \"-c\", ...], as Azure ML runs a command "
         "string in a shell");
  }

  void Communicator() {
    ojson* c = Member(doc_, "communicator");
    if (c == nullptr || !c->is_string()) return;
    const std::string value = ToLower(c->get<std::string>());
    if (value == "openmpi" || value == "intelmpi") {
      Note(At("communicator"),
           fmt::format("\"{}\" translated to \"Mpi\" (Open MPI's mpirun)", c->get<std::string>()));
      *c = "Mpi";
    }
  }

  void Distributed(const std::string& name) {
    auto it = Find(doc_, name);
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson config = it.value();
    doc_.erase(it.key());
    if (config.is_null()) return;
    std::string type;
    if (config.is_string()) {
      type = config.get<std::string>();
      config = ojson::object();
    } else if (config.is_object()) {
      ojson* t = Member(config, "type");
      if (t == nullptr || !t->is_string()) {
        Error(at + "/type", "is required: Mpi, Nccl, Gloo, PyTorch, TensorFlow or ParameterServer");
        return;
      }
      type = t->get<std::string>();
      RejectRest(config, at,
                 {"type", "processCountPerNode", "nodeCount", "communicationBackend",
                  "processCount", "workerCount", "parameterServerCount"});
    } else {
      Error(at, "must be a name (Mpi, PyTorch, ...) or an object with \"type\"");
      return;
    }
    std::string communicator;
    const std::string key = FieldKey(type);
    if (key == "mpi" || key == "openmpi" || key == "intelmpi" || key == "mpiconfiguration") {
      communicator = "Mpi";
    } else if (key == "nccl" || key == "gloo") {
      communicator = key == "nccl" ? "Nccl" : "Gloo";
    } else if (key == "pytorch" || key == "pytorchconfiguration") {
      ojson* backend = Member(config, "communicationBackend");
      communicator =
          backend && backend->is_string() && FieldKey(Spell(*backend)) == "gloo" ? "Gloo" : "Nccl";
    } else if (key == "tensorflow") {
      communicator = "TensorFlow";
    } else if (key == "parameterserver" || key == "tensorflowconfiguration") {
      communicator = "ParameterServer";
    } else {
      Error(at, fmt::format("\"{}\" is not one of Mpi, Nccl, Gloo, PyTorch, TensorFlow, "
                            "ParameterServer",
                            type));
      return;
    }
    if (!Put(doc_, "communicator", communicator, at, "")) return;
    out_->renamed.emplace_back("/communicator", at);
    for (const char* field : {"processCountPerNode", "nodeCount"}) {
      if (ojson* v = Member(config, field); v && !v->is_null()) Put(doc_, field, *v, at, "");
    }
    if (ojson* v = Member(config, "processCount"); v && !v->is_null()) {
      ProcessCount(*v, at + "/processCount");
    }
    for (const char* field : {"workerCount", "parameterServerCount"}) {
      if (ojson* v = Member(config, field); v && !v->is_null()) {
        if (!Member(doc_, "tensorflow") || !Member(doc_, "tensorflow")->is_object()) {
          Erase(doc_, "tensorflow");
          doc_["tensorflow"] = ojson::object();
        }
        Put(*Member(doc_, "tensorflow"), field, *v, at, "/tensorflow");
      }
    }
    Note(at, fmt::format("translated to communicator \"{}\"", communicator));
  }

  // A job's total process count, as PyTorchConfiguration gives it.
  void ProcessCount(const ojson& total, const std::string& at) {
    if (!total.is_number_unsigned() || total.get<uint64_t>() < 1) {
      Error(at, fmt::format("must be a positive integer, got {}", total.dump()));
      return;
    }
    int64_t nodes = 1;
    if (ojson* n = Member(doc_, "nodeCount"); n && n->is_number_unsigned()) {
      nodes = n->get<int64_t>();
    }
    const int64_t count = total.get<int64_t>();
    if (nodes < 1 || count % nodes != 0) {
      Error(at, fmt::format("{} processes do not divide over nodeCount {}", count, nodes));
      return;
    }
    if (Put(doc_, "processCountPerNode", count / nodes, at, "")) {
      Note(at, fmt::format("translated to processCountPerNode {} ({} over {} node(s))",
                           count / nodes, count, nodes));
    }
  }

  void MpiNodeCount() {
    ojson* mpi = Member(doc_, "mpi");
    if (mpi == nullptr || !mpi->is_object()) return;
    auto it = Find(*mpi, "nodeCount");
    if (it == mpi->end()) return;
    const std::string at = At("mpi") + Token(it.key());
    ojson value = it.value();
    mpi->erase(it.key());
    if (value.is_null()) return;
    if (Put(doc_, "nodeCount", value, at, "")) Note(at, "translated to nodeCount");
  }

  void PyTorch() {
    auto it = Find(doc_, "pytorch");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson section = it.value();
    doc_.erase(it.key());
    if (!section.is_object()) {
      if (!section.is_null()) Error(at, "must be an object");
      return;
    }
    RejectRest(section, at, {"communicationBackend", "processCount", "nodeCount"});
    if (ojson* n = Member(section, "nodeCount"); n && !n->is_null()) {
      if (Put(doc_, "nodeCount", *n, at + "/nodeCount", "") && n->dump() != "1") {
        Note(at + "/nodeCount", "translated to nodeCount");
      }
    }
    if (ojson* backend = Member(section, "communicationBackend"); backend && Present(*backend)) {
      ojson* c = Member(doc_, "communicator");
      const bool none = c == nullptr || c->is_null() || FieldKey(Spell(*c)) == "none";
      const std::string b = FieldKey(Spell(*backend));
      if (framework_ == "pytorch" && none && (b == "nccl" || b == "gloo")) {
        Erase(doc_, "communicator");
        doc_["communicator"] = b == "nccl" ? "Nccl" : "Gloo";
        Note(at + "/communicationBackend",
             fmt::format("translated to communicator \"{}\"", Spell(doc_["communicator"])));
      } else {
        Note(at + "/communicationBackend",
             "ignored: the communicator field decides (it is used only with framework "
             "\"PyTorch\" and no communicator)");
      }
    }
    if (ojson* v = Member(section, "processCount"); v && !v->is_null()) {
      ProcessCount(*v, at + "/processCount");
    }
  }

  void EnvironmentVariables() {
    auto it = Find(doc_, "environmentVariables");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson vars = it.value();
    doc_.erase(it.key());
    if (vars.is_null() || (vars.is_object() && vars.empty())) return;
    if (!vars.is_object()) {
      Error(at, "must be an object of names and values");
      return;
    }
    ojson& env = Section(doc_, "environment");
    ojson& target = Section(env, "environmentVariables");
    for (auto v = vars.begin(); v != vars.end(); ++v) {
      if (target.contains(v.key())) {
        Error(at + Token(v.key()), "is also in /environment/environmentVariables: give it once");
        continue;
      }
      target[v.key()] = v.value();
    }
    Note(at, "translated to environment.environmentVariables");
  }

  // The object member `name` of `parent`, created when absent or null.
  ojson& Section(ojson& parent, const std::string& name) {
    auto it = Find(parent, name);
    if (it != parent.end() && it.value().is_object()) return it.value();
    if (it != parent.end()) parent.erase(it.key());
    parent[name] = ojson::object();
    return parent[name];
  }

  void Docker() {
    // The first of these that gives shmSize wins: RunConfiguration.docker is the
    // current place, environment.docker the deprecated one.
    struct Source {
      ojson* parent;
      const char* name;
      std::string pointer;
    };
    std::vector<Source> sources;
    for (const char* name : {"docker", "dockerRuntimeConfig"}) {
      auto it = Find(doc_, name);
      if (it != doc_.end()) sources.push_back({&doc_, name, Token(it.key())});
    }
    if (ojson* env = Member(doc_, "environment"); env && env->is_object()) {
      auto it = Find(*env, "docker");
      if (it != env->end()) {
        sources.push_back({env, "docker", At("environment") + Token(it.key())});
      }
    }
    for (const Source& source : sources) {
      ojson section = *Member(*source.parent, source.name);
      Erase(*source.parent, source.name);
      if (section.is_null()) continue;
      if (!section.is_object()) {
        Error(source.pointer, "must be an object");
        continue;
      }
      RejectRest(section, source.pointer, {"shmSize"});
      auto shm = Find(section, "shmSize");
      if (shm != section.end() && !shm.value().is_null()) {
        Shm(shm.value(), source.pointer + Token(shm.key()));
      }
    }
    auto it = Find(doc_, "shmSize");
    if (it != doc_.end()) {
      const std::string at = Token(it.key());
      ojson value = it.value();
      doc_.erase(it.key());
      if (!value.is_null()) Shm(value, at);
    }
  }

  void Shm(const ojson& value, const std::string& at) {
    const std::string text = Spell(value);
    std::optional<uint64_t> bytes = ParseDockerSize(text);
    if (!bytes) {
      Error(at, fmt::format("\"{}\" is not a size such as \"2g\", \"512m\" or 1073741824", text));
      return;
    }
    if (out_->shm_size_bytes) {
      if (*out_->shm_size_bytes != *bytes) {
        Note(at, fmt::format("ignored: {} {} wins", out_->shm_size_pointer, out_->shm_size_text));
      }
      return;
    }
    out_->shm_size_bytes = bytes;
    out_->shm_size_pointer = at;
    out_->shm_size_text = text;
  }

  void UseGpu() {
    auto it = Find(doc_, "useGpu");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson value = it.value();
    doc_.erase(it.key());
    if (value.is_null()) return;
    if (!value.is_boolean()) {
      Error(at, fmt::format("must be true or false, got {}", value.dump()));
      return;
    }
    out_->use_gpu = value.get<bool>();
    if (*out_->use_gpu) return;
    ojson& env = Section(Section(doc_, "environment"), "environmentVariables");
    if (env.contains("CUDA_VISIBLE_DEVICES")) {
      Note(at, "false: the job's CUDA_VISIBLE_DEVICES is kept as written");
      return;
    }
    env["CUDA_VISIBLE_DEVICES"] = "";
    Note(at, "false: the ranks see no GPU (CUDA_VISIBLE_DEVICES is empty)");
  }

  // The Estimator's package parameters, at the top level, into environment.python
  // where the Python environment (python_env_spec.h) reads them.
  void EstimatorPackages() {
    static const std::pair<const char*, const char*> kMoves[] = {
        {"userManaged", "userManagedDependencies"},
        {"condaPackages", "condaPackages"},
        {"pipPackages", "pipPackages"},
        {"condaDependenciesFilePath", "condaDependenciesFile"}};
    for (const auto& [from, to] : kMoves) {
      auto it = Find(doc_, from);
      if (it == doc_.end()) continue;
      const std::string at = Token(it.key());
      ojson value = it.value();
      doc_.erase(it.key());
      if (value.is_null()) continue;
      if (Put(Section(Section(doc_, "environment"), "python"), to, value, at,
              "/environment/python")) {
        Note(at, fmt::format("translated to environment.python.{}", to));
      }
    }
    auto it = Find(doc_, "pipRequirementsFilePath");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson value = it.value();
    doc_.erase(it.key());
    if (value.is_null()) return;
    if (!value.is_string() ||
        std::filesystem::path(value.get<std::string>()).lexically_normal() != "requirements.txt") {
      Error(at, fmt::format("{}: trainrun installs requirements.txt of sourceDirectory; rename "
                            "the file to that",
                            value.dump()));
      return;
    }
    if (Put(Section(Section(doc_, "environment"), "python"), "userManagedDependencies", false, at,
            "/environment/python")) {
      Note(at, "translated to environment.python.userManagedDependencies false");
    }
  }

  void DataReferences() {
    auto it = Find(doc_, "dataReferences");
    if (it == doc_.end()) return;
    const std::string at = Token(it.key());
    ojson refs = it.value();
    doc_.erase(it.key());
    if (refs.is_null()) return;
    if (!refs.is_object()) {
      Error(at, "must be an object of data reference names");
      return;
    }
    for (auto r = refs.begin(); r != refs.end(); ++r) {
      const std::string ref_at = at + Token(r.key());
      ojson& ref = r.value();
      if (!ref.is_object()) {
        Error(ref_at, "must be an object");
        continue;
      }
      RejectRest(ref, ref_at,
                 {"dataStoreName", "pathOnDataStore", "mode", "overwrite", "pathOnCompute"});
      ojson* store = Member(ref, "dataStoreName");
      if (store == nullptr || !store->is_string() || store->get<std::string>().empty()) {
        Error(ref_at + "/dataStoreName", "is required");
        continue;
      }
      ojson* mode = Member(ref, "mode");
      const std::string mechanism = mode && mode->is_string() ? ToLower(Spell(*mode)) : "mount";
      if (mechanism == "upload") {
        Error(ref_at + "/mode",
              "\"upload\" is not supported: trainrun uploads ./outputs to run history; write "
              "outputs there");
        continue;
      }
      ojson* path = Member(ref, "pathOnDataStore");
      const std::string uri =
          Datastore(store->get<std::string>(), path && path->is_string() ? Spell(*path) : "",
                    ref_at + "/dataStoreName");
      if (uri.empty()) continue;
      ojson& data = Section(doc_, "data");
      if (Member(data, r.key())) {
        Error(ref_at, fmt::format("/data/{} is given too: name it once", r.key()));
        continue;
      }
      ojson d = {{"dataLocation", {{"uri", uri}}}, {"mechanism", mechanism}};
      if (ojson* p = Member(ref, "pathOnCompute"); p && !p->is_null()) d["pathOnCompute"] = *p;
      if (ojson* o = Member(ref, "overwrite"); o && !o->is_null()) d["overwrite"] = *o;
      data[r.key()] = d;
      Note(ref_at, fmt::format("translated to data.{} ({} {})", r.key(), mechanism, uri));
    }
  }

  void Data() {
    ojson* data = Member(doc_, "data");
    if (data == nullptr || !data->is_object()) return;
    const std::string data_at = At("data");
    for (auto d = data->begin(); d != data->end(); ++d) {
      ojson* location = Member(d.value(), "dataLocation");
      if (location == nullptr || !location->is_object()) continue;
      auto dl = Find(d.value(), "dataLocation");
      const std::string at = data_at + Token(d.key()) + Token(dl.key());
      std::string uri;
      bool have_uri = false;
      if (auto u = Find(*location, "uri"); u != location->end() && !u.value().is_null()) {
        if (u.value().is_string()) {
          uri = u.value().get<std::string>();
          have_uri = true;
        } else if (u.value().is_object()) {
          const std::string u_at = at + Token(u.key());
          RejectRest(u.value(), u_at, {"path", "isFile"});
          ojson* p = Member(u.value(), "path");
          if (p == nullptr || !p->is_string()) {
            Error(u_at + "/path", "is required");
          } else {
            uri = p->get<std::string>();
            have_uri = true;
            Note(u_at, fmt::format("translated to uri \"{}\"", uri));
          }
          location->erase(u.key());
        }
      }
      if (auto p = Find(*location, "dataPath"); p != location->end()) {
        const std::string p_at = at + Token(p.key());
        ojson path = p.value();
        location->erase(p.key());
        if (path.is_object()) {
          RejectRest(path, p_at, {"datastoreName", "relativePath"});
          ojson* store = Member(path, "datastoreName");
          ojson* relative = Member(path, "relativePath");
          if (store == nullptr || !store->is_string()) {
            Error(p_at + "/datastoreName", "is required");
          } else if (!have_uri) {
            uri = Datastore(store->get<std::string>(),
                            relative && relative->is_string() ? Spell(*relative) : "",
                            p_at + "/datastoreName");
            if (!uri.empty()) {
              have_uri = true;
              Note(p_at, fmt::format("translated to uri \"{}\"", uri));
            }
          }
        } else if (!path.is_null()) {
          Error(p_at, "must be an object with datastoreName and relativePath");
        }
      }
      if (auto s = Find(*location, "dataset"); s != location->end()) {
        const std::string s_at = at + Token(s.key());
        if (Present(s.value()) && !have_uri) {
          Error(s_at,
                "a registered dataset lives in an Azure ML workspace, which trainrun cannot "
                "read: give dataLocation.uri (a path, az://, s3:// or https:// URI) or dataPath");
          // No "uri is required" on top of this.
          have_uri = true;
          uri = "dataset";
        }
        location->erase(s.key());
      }
      if (have_uri) {
        Erase(*location, "uri");
        (*location)["uri"] = uri;
      }
    }
  }

  ojson& doc_;
  AzureMlTranslation* out_;
  std::vector<std::pair<std::string, std::string>> datastores_;
  std::string framework_;  // lower case
};

// "2 GiB", "64 MiB", "1.5 GiB".
std::string Bytes(uint64_t bytes) {
  for (auto [unit, name] : {std::pair{1ull << 30, "GiB"}, std::pair{1ull << 20, "MiB"}}) {
    if (bytes < unit) continue;
    if (bytes % unit == 0) return fmt::format("{} {}", bytes / unit, name);
    return fmt::format("{:.3g} {}", static_cast<double>(bytes) / static_cast<double>(unit), name);
  }
  return fmt::format("{} bytes", bytes);
}

}  // namespace

const std::vector<AzureMlField>& AzureMlFields() { return kFields; }

std::string FieldKey(std::string_view name) {
  std::string key;
  for (char c : name) {
    if (c != '_') key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return key;
}

std::vector<std::string> AzureMlNamesAt(const std::string& pointer) {
  std::vector<std::string> names;
  const std::vector<std::string> parent =
      pointer.empty() ? std::vector<std::string>{} : SplitPointer(pointer);
  for (const AzureMlField& field : kFields) {
    std::vector<std::string> parts = SplitPointer(field.pointer);
    if (parts.size() <= parent.size()) continue;
    bool match = true;
    for (size_t i = 0; i < parent.size(); ++i) {
      match = match && (parts[i] == parent[i] || parts[i] == "*" || parent[i] == "*");
    }
    if (!match) continue;
    const std::string& name = parts[parent.size()];
    if (name != "*" && std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  if (pointer.empty()) names.push_back("datastores");
  return names;
}

void TranslateAzureMl(const std::string& path, nlohmann::ordered_json* doc,
                      AzureMlTranslation* out) {
  if (!doc->is_object()) return;
  Translator(doc, out).Run(path);
}

std::optional<uint64_t> ParseDockerSize(std::string_view text) {
  text = TrimSpace(text);
  if (text.empty()) return std::nullopt;
  uint64_t unit = 1;
  const char last = static_cast<char>(std::tolower(static_cast<unsigned char>(text.back())));
  if (last == 'b' || last == 'k' || last == 'm' || last == 'g') {
    unit = last == 'k' ? 1ull << 10 : last == 'm' ? 1ull << 20 : last == 'g' ? 1ull << 30 : 1;
    text.remove_suffix(1);
  }
  if (text.empty() || text.size() > 12) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value == 0 || value > UINT64_MAX / unit) return std::nullopt;
  return value * unit;
}

std::string CheckShmSize(uint64_t wanted, const std::string& field, const std::string& shm_path,
                         std::string* error) {
  struct statvfs st {};
  if (statvfs(shm_path.c_str(), &st) != 0) {
    if (error) *error = fmt::format("{}: {}", shm_path, std::strerror(errno));
    return "";
  }
  const uint64_t size = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
  if (size >= wanted) return "";
  const std::string docker = wanted % (1ull << 30) == 0   ? fmt::format("{}g", wanted >> 30)
                             : wanted % (1ull << 20) == 0 ? fmt::format("{}m", wanted >> 20)
                                                          : fmt::format("{}", wanted);
  return fmt::format(
      "{} asks for {} of shared memory but {} has {}: trainrun cannot resize it inside a "
      "container; start the container with a larger one (docker/podman run --shm-size={}, "
      "Kubernetes: an emptyDir with medium Memory mounted at /dev/shm) or DataLoader workers "
      "and NCCL may fail with \"No space left on device\" or a bus error",
      field, Bytes(wanted), shm_path, Bytes(size), docker);
}

}  // namespace trainrun
