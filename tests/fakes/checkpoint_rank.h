// What the two checkpoint suites share (tests/launcher/checkpoint_test.cc, history on
// file://, and tests/stores/checkpoint_store_test.cc, on a real S3 server): the rank
// that is stopped and resumed, and how trainrun is started with it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/launcher/trainrun_runner.h"
#include "tests/test_util.h"

namespace trainrun::testing {

// A rank that counts steps and saves the last one (checkpoint.saving("last.pt"),
// the step as text) when told to stop with SIGTERM; it creates $STARTED once it
// counts. Started again, it resumes from the newest checkpoint trainrun restored,
// prints "resumed from last.pt at step N" and exits 0.
inline constexpr const char* kCountingRank = R"(
import os, signal, sys, time
from trainrun import checkpoint
last = checkpoint.latest()
if last is not None:
    print(f"resumed from {last.name} at step {last.read_text()}", flush=True)
    sys.exit(0)
step = 0
def stop(*_):
    with checkpoint.saving("last.pt") as path:
        path.write_text(str(step))
    print(f"saved step {step}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(os.environ["STARTED"], "w").close()
while True:
    step += 1
    time.sleep(0.02)
)";

// Starts `trainrun run DIR/job.json --history HISTORY --workdir DIR/work --run-id
// RUN_ID --console none` in DIR/RUN_ID, with `env` and what the ranks need besides:
// trainrun's Python helpers on PYTHONPATH and STARTED=DIR/started.
inline std::unique_ptr<TrainrunProcess> StartCheckpointRun(const TempDir& dir,
                                                           const std::string& history,
                                                           const std::string& run_id,
                                                           std::vector<std::string> env = {}) {
  env.push_back("PYTHONPATH=" + SourceRoot() + "/python");
  env.push_back("STARTED=" + (dir / "started"));
  const std::string where = dir / run_id;
  std::filesystem::create_directories(where);
  return std::make_unique<TrainrunProcess>(
      std::vector<std::string>{TrainrunBinary(), "run", dir / "job.json", "--history", history,
                               "--workdir", dir / "work", "--run-id", run_id, "--console", "none"},
      env, where);
}

}  // namespace trainrun::testing
