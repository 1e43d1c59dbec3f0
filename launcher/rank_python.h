// trainrun's Python modules for the ranks (python/ in the source tree, installed in
// share/trainrun/python): `trainrun` (metrics) and the `azureml` stand-in
// (azureml.core.Run), which steps aside for a real azureml. Internal to the launcher.
#pragma once

#include <string>
#include <vector>

namespace trainrun {

// The folder holding them: <prefix>/share/trainrun/python next to this executable's
// <prefix>/bin, else the source tree's python/ (a build tree). Empty when neither
// exists.
std::string TrainrunPythonDir();

// Appends `dir` to PYTHONPATH among the "NAME=value" `entries` (sets it when there is
// none), so what the user put there is searched first. Does nothing for an empty
// `dir` or one PYTHONPATH already names.
void AppendPythonPath(std::vector<std::string>* entries, const std::string& dir);

}  // namespace trainrun
