#include "launcher/topology_command.h"

#include <fmt/format.h>

#include "launcher/exit_codes.h"
#include "launcher/node_binding.h"
#include "runtime/process/rank_env.h"

namespace trainrun {

int ShowTopology(const TopologyOptions& options, Console* out, Console* err) {
  NodeBindingRequest request;
  request.topology_xml = options.topology_xml;
  request.process_count = options.nproc;
  request.gpus_per_process = options.gpus_per_process;
  request.environment = CurrentEnvironment();
  Result<NodeBinding> binding = PlanNodeBinding(request);
  if (!binding.ok()) {
    err->Write(fmt::format("trainrun: error: {}\n", binding.status().message()), false);
    return ExitCodeFor(binding.status());
  }
  if (options.json) {
    out->Write(binding->Json().dump(2) + "\n", false);
    return kExitOk;
  }
  // The tables show the parts' own notes and warnings; the binding's follow.
  std::string text = binding->Table();
  for (const std::string& note : binding->notes) text += fmt::format("note: {}\n", note);
  for (const std::string& warning : binding->warnings)
    text += fmt::format("warning: {}\n", warning);
  out->Write(std::move(text), false);
  return kExitOk;
}

}  // namespace trainrun
