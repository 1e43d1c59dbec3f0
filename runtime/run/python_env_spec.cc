#include "runtime/run/python_env_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "base/field_errors.h"
#include "base/field_suggest.h"
#include "base/input_limits.h"
#include "base/text.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A conda environment file is a few kilobytes; this keeps /dev/zero out.
constexpr std::uintmax_t kMaxCondaFileBytes = 1 << 20;

const std::vector<std::string> kPythonFields = {"interpreterPath",      "userManagedDependencies",
                                                "condaDependencies",    "condaDependenciesFile",
                                                "baseCondaEnvironment", "pipPackages",
                                                "condaPackages"};

// The strings of an array, or an error naming the member that is not one.
bool Strings(const json& value, const std::string& at, std::vector<std::string>* out,
             FieldErrors* errors) {
  if (!value.is_array()) {
    errors->Add(at, fmt::format("must be an array of strings, got {}", JsonTypeName(value)));
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string() || TrimSpace(value[i].get<std::string>()).empty()) {
      errors->Add(fmt::format("{}/{}", at, i),
                  fmt::format("must be a package as a string, got {}", value[i].dump()));
      ok = false;
      continue;
    }
    out->emplace_back(TrimSpace(value[i].get<std::string>()));
  }
  return ok;
}

// "numpy>=1.2" -> "numpy"; "conda-forge::xz" -> "xz".
std::string PackageName(const std::string& spec) {
  std::string name = spec;
  if (size_t colons = name.find("::"); colons != std::string::npos) name = name.substr(colons + 2);
  size_t end = name.find_first_of("=<>!~ [");
  return ToLower(name.substr(0, end));
}

// "python=3.10", "python==3.10.*", "python 3.10" -> "3.10".
std::string VersionOf(const std::string& spec) {
  size_t start = spec.find_first_of("=<>!~ ");
  if (start == std::string::npos) return "";
  std::string version(TrimSpace(spec.substr(start)));
  while (!version.empty() && (version[0] == '=' || version[0] == ' ')) version.erase(0, 1);
  if (version.size() >= 2 && version.compare(version.size() - 2, 2, ".*") == 0) {
    version.resize(version.size() - 2);
  }
  return version;
}

// A conda environment (`name`, `channels`, `dependencies` with a `pip:` sublist) into
// `spec`.
void ReadCondaEnvironment(const json& conda, const std::string& at, FieldErrors* errors,
                          PythonEnvSpec* spec) {
  if (!conda.is_object()) {
    errors->Add(at, fmt::format("must be a conda environment (an object with \"dependencies\"), "
                                "got {}",
                                JsonTypeName(conda)));
    return;
  }
  for (auto it = conda.begin(); it != conda.end(); ++it) {
    const std::string member = at + "/" + JsonPointerToken(it.key());
    if (it.key() == "channels") {
      if (!it.value().is_null()) Strings(it.value(), member, &spec->channels, errors);
    } else if (it.key() == "dependencies") {
      if (it.value().is_null()) continue;
      if (!it.value().is_array()) {
        errors->Add(member, fmt::format("must be an array, got {}", JsonTypeName(it.value())));
        continue;
      }
      for (size_t i = 0; i < it.value().size(); ++i) {
        const json& dep = it.value()[i];
        const std::string dep_at = fmt::format("{}/{}", member, i);
        if (dep.is_object() && dep.size() == 1 && dep.contains("pip")) {
          if (!dep["pip"].is_null()) Strings(dep["pip"], dep_at + "/pip", &spec->pip, errors);
        } else if (dep.is_string() && !TrimSpace(dep.get<std::string>()).empty()) {
          const std::string package(TrimSpace(dep.get<std::string>()));
          const std::string name = PackageName(package);
          if (name == "python") {
            spec->python_version = VersionOf(package);
          } else if (name != "pip") {
            // pip itself comes with every environment trainrun builds.
            spec->conda_packages.push_back(package);
          }
        } else {
          errors->Add(dep_at, fmt::format("must be a conda package (a string) or {{\"pip\": "
                                          "[...]}}, got {}",
                                          dep.dump()));
        }
      }
    } else if (it.key() == "name" || it.key() == "prefix" || it.key() == "variables") {
      spec->notes.push_back(fmt::format(
          "{}: ignored (trainrun names and places the environment by its contents)", member));
    } else {
      errors->Add(member, fmt::format("unknown field of a conda environment; known fields are "
                                      "name, channels, dependencies, prefix, variables"));
    }
  }
}

json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const YAML::Node& item : node) array.push_back(YamlToJson(item));
      return array;
    }
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& item : node) object[item.first.as<std::string>()] = YamlToJson(item.second);
      return object;
    }
    case YAML::NodeType::Scalar: return node.as<std::string>();
    default: return nullptr;
  }
}

}  // namespace

YamlResult ParseYamlAsJson(const std::string& text) {
  YamlResult result;
  try {
    result.value = YamlToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    result.error = e.mark.is_null() ? e.msg
                                    : fmt::format("{} (line {}, column {})", e.msg, e.mark.line + 1,
                                                  e.mark.column + 1);
  }
  return result;
}

void ParsePythonSection(const json& python, const std::string& pointer,
                        const std::string& source_directory, PythonEnvSpec* spec,
                        FieldErrors* errors) {
  const std::map<std::string, FieldMember> members =
      MatchFields(python, pointer, kPythonFields, errors);
  // JSON null is "not given", as elsewhere in the job file.
  auto get = [&](const std::string& name) -> const json* {
    auto it = members.find(name);
    return it == members.end() || it->second.value->is_null() ? nullptr : it->second.value;
  };
  auto at = [&](const std::string& name) {
    auto it = members.find(name);
    return it == members.end() ? pointer + "/" + name : it->second.pointer;
  };

  if (const json* v = get("interpreterPath")) {
    if (!v->is_string() || v->get<std::string>().empty()) {
      errors->Add(at("interpreterPath"),
                  fmt::format("must be a non-empty string, got {}", v->dump()));
    } else if (Status fits = CheckPathLength(v->get<std::string>()); !fits.ok()) {
      errors->Add(at("interpreterPath"), fits.message());
    } else {
      spec->interpreter_path = v->get<std::string>();
    }
  }
  if (const json* v = get("userManagedDependencies")) {
    if (!v->is_boolean()) {
      errors->Add(at("userManagedDependencies"),
                  fmt::format("must be true or false, got {}", JsonTypeName(*v)));
    } else {
      spec->user_managed_dependencies = v->get<bool>();
      spec->use_requirements_file = !v->get<bool>();
    }
  }

  const json* inline_conda = get("condaDependencies");
  const json* conda_file = get("condaDependenciesFile");
  if (inline_conda != nullptr && conda_file != nullptr) {
    errors->Add(at("condaDependenciesFile"),
                "give condaDependencies or condaDependenciesFile, not both");
  } else if (inline_conda != nullptr) {
    spec->conda_source = "condaDependencies";
    if (inline_conda->is_string()) {
      // conda's own YAML, pasted as a string.
      YamlResult yaml = ParseYamlAsJson(inline_conda->get<std::string>());
      if (!yaml.error.empty()) {
        errors->Add(at("condaDependencies"), "not valid YAML: " + yaml.error);
      } else {
        ReadCondaEnvironment(yaml.value, at("condaDependencies"), errors, spec);
      }
    } else {
      ReadCondaEnvironment(*inline_conda, at("condaDependencies"), errors, spec);
    }
  } else if (conda_file != nullptr) {
    const std::string field = at("condaDependenciesFile");
    if (!conda_file->is_string() || conda_file->get<std::string>().empty()) {
      errors->Add(field,
                  fmt::format("must be a path in sourceDirectory, got {}", conda_file->dump()));
    } else if (Status fits = CheckPathLength(conda_file->get<std::string>()); !fits.ok()) {
      errors->Add(field, fits.message());
    } else {
      const std::string name = conda_file->get<std::string>();
      const fs::path path = fs::path(source_directory) / name;
      std::error_code ec;
      spec->conda_source = fmt::format("condaDependenciesFile ({})", name);
      if (!fs::is_regular_file(path, ec)) {
        errors->Add(field, fmt::format("\"{}\" is not a file in sourceDirectory {}", name,
                                       source_directory));
      } else if (fs::file_size(path, ec) > kMaxCondaFileBytes) {
        errors->Add(field, fmt::format("\"{}\" is larger than {} bytes", name, kMaxCondaFileBytes));
      } else {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        YamlResult yaml = ParseYamlAsJson(text.str());
        if (!yaml.error.empty()) {
          errors->Add(field, fmt::format("{}: not valid YAML: {}", path.string(), yaml.error));
        } else {
          ReadCondaEnvironment(yaml.value, field, errors, spec);
        }
      }
    }
  }
  if (const json* v = get("condaPackages")) {
    std::vector<std::string> packages;
    Strings(*v, at("condaPackages"), &packages, errors);
    for (const std::string& p : packages) {
      if (PackageName(p) == "python") {
        spec->python_version = VersionOf(p);
      } else if (PackageName(p) != "pip") {
        spec->conda_packages.push_back(p);
      }
    }
  }
  if (const json* v = get("pipPackages")) Strings(*v, at("pipPackages"), &spec->pip, errors);
  // Azure ML's own SDK packages (a saved default RunConfiguration lists
  // azureml-defaults): trainrun ships the Run API they provide (README "Metrics"), and
  // the real one would send the script's metrics to the Azure ML service instead of
  // run history. Left out, with a line saying so.
  std::vector<std::string> sdk;
  std::erase_if(spec->pip, [&sdk](const std::string& requirement) {
    std::string name = PackageName(requirement);
    std::replace(name.begin(), name.end(), '_', '-');
    const bool is_sdk = name == "azureml-defaults" || name == "azureml-core" ||
                        name == "azureml-sdk" || name == "azureml";
    if (is_sdk) sdk.push_back(requirement);
    return is_sdk;
  });
  if (!sdk.empty()) {
    spec->notes.push_back(fmt::format(
        "{}: not installed: {}: trainrun provides azureml.core.Run itself and keeps the "
        "script's metrics in run history (README \"Metrics\"); the real SDK would send them "
        "to the Azure ML service",
        pointer, fmt::join(sdk, ", ")));
  }
  if (get("baseCondaEnvironment") != nullptr) {
    spec->notes.push_back(
        fmt::format("{}: ignored (it names an environment of Azure ML's image "
                    "build; trainrun builds from the image's interpreter)",
                    at("baseCondaEnvironment")));
  }
  if (spec->user_managed_dependencies == true &&
      (!spec->conda_packages.empty() || !spec->pip.empty())) {
    spec->notes.push_back(
        fmt::format("{}: true, so the packages listed are not installed: the image's Python "
                    "runs the script as it is",
                    at("userManagedDependencies")));
  }
}

}  // namespace trainrun
