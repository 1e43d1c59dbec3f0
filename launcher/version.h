#pragma once

namespace trainrun {

// Set by CMake from project(VERSION ...).
constexpr const char* kTrainrunVersion = TRAINRUN_VERSION;

}  // namespace trainrun
