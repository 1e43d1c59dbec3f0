// Runs the GPU health checks on this machine's GPUs and prints the console summary
// (stderr) and the report as JSON (stdout): for checking gpu/gpu_health against a real
// driver on a GPU machine, where trainrun itself is not needed.
//
//   gpu_health_probe [THRESHOLDS_JSON [NVML_LIBRARY]]
//
// Exit status: 0 every check passed or was not supported, 1 a check failed, 2 the
// thresholds were refused.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "gpu/gpu_health.h"

int main(int argc, char** argv) {
  using namespace trainrun::gpu;
  nlohmann::json object = nlohmann::json::object();
  if (argc > 1) object = nlohmann::json::parse(argv[1], nullptr, false);
  trainrun::Result<HealthThresholds> thresholds = ParseHealthThresholds(object, "/health");
  if (!thresholds.ok()) {
    std::fprintf(stderr, "%s\n", thresholds.status().message().c_str());
    return 2;
  }
  HealthOptions options;
  if (argc > 2) options.nvml_library = argv[2];
  HealthReport report = CheckGpuHealth(*thresholds, options);
  std::fputs(HealthSummary(report).c_str(), stderr);
  std::puts(HealthReportJson(report).dump(2).c_str());
  return report.ok() ? 0 : 1;
}
