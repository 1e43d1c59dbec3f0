// `environment.python` of the job file: which interpreter runs the script and which
// Python packages the run needs, as Azure ML's RunConfiguration writes it.
//
// ParsePythonSection() reads the section once (condaDependencies inline, as an object
// or YAML text; condaDependenciesFile, YAML read from the source directory; the
// Estimator-style pipPackages / condaPackages lists; userManagedDependencies) into a
// PythonEnvSpec. The environment itself is built later, on the node (python_env.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/field_errors.h"

namespace trainrun {

// The file in the source directory whose requirements are installed when
// userManagedDependencies is false.
constexpr const char* kRequirementsFileName = "requirements.txt";

struct PythonEnvSpec {
  // environment.python.interpreterPath; empty: python3 on PATH.
  std::string interpreter_path;
  // environment.python.userManagedDependencies as written; none when absent.
  std::optional<bool> user_managed_dependencies;
  // conda packages besides python and pip ("numpy=1.24", "conda-forge::xz"), in order.
  std::vector<std::string> conda_packages;
  std::vector<std::string> channels;  // conda channels, in order
  // The version a "python=3.10" / "python==3.10.*" dependency asks for ("3.10");
  // empty: any.
  std::string python_version;
  // pip requirements and options ("--find-links /wheels"), in order: the pip sublist
  // of condaDependencies, then pipPackages.
  std::vector<std::string> pip;
  // Where the conda dependencies came from, for messages: "condaDependencies",
  // "condaDependenciesFile (conda.yml)" or "".
  std::string conda_source;
  // Also install the source directory's requirements.txt (userManagedDependencies
  // false, written out).
  bool use_requirements_file = false;
  // What was read but not used, one line each (Info in the system log).
  std::vector<std::string> notes;

  // Whether the run gets an environment of its own: userManagedDependencies is not
  // true and there is something to install (packages, or the requirements file).
  bool wanted() const {
    return user_managed_dependencies != true &&
           (!conda_packages.empty() || !pip.empty() || use_requirements_file);
  }
};

// Reads `python` (the object at JSON pointer `pointer`, "/environment/python") into
// `spec`. Names are matched case-insensitively; unknown names are errors suggesting
// the nearest known one. condaDependenciesFile is read relative to
// `source_directory` (YAML, or JSON, which is YAML too). Adds every error found to
// `errors`, each naming its field; adds none when the section is valid.
void ParsePythonSection(const nlohmann::json& python, const std::string& pointer,
                        const std::string& source_directory, PythonEnvSpec* spec,
                        FieldErrors* errors);

// YAML text as JSON (mappings to objects, sequences to arrays, scalars to strings,
// empty values to null), for conda environment files; never throws.
struct YamlResult {
  nlohmann::json value;
  std::string error;  // empty when parsed, else what is wrong and its line and column
};
YamlResult ParseYamlAsJson(const std::string& text);

}  // namespace trainrun
