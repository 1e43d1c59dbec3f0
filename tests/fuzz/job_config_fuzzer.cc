// libFuzzer target: a job file through ParseJobText (the size and nesting limits,
// the SAX pass, the field readers and their path and number checks), then the
// placeholders of every argument and command word of a file that validates.
// The dry-run plan lives in launcher/ and needs a cluster placement and a
// topology, so it is left to the end-to-end tests.
//
// Built by -DTRAINRUN_BUILD_FUZZERS=ON (scripts/fuzz.sh); corpus in corpus/job_config.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/run/job_config.h"
#include "runtime/run/placeholders.h"

namespace {

// A folder with a job file's neighbours, so relative sourceDirectory and script
// values resolve to something real: <dir>/train.py and <dir>/src/train.py.
std::string JobPath() {
  static const std::string path = [] {
    char dir[] = "/tmp/trainrun-fuzz-XXXXXX";
    if (mkdtemp(dir) == nullptr) std::abort();
    const std::string base = dir;
    std::ofstream(base + "/train.py") << "print('hello')\n";
    if (mkdir((base + "/src").c_str(), 0755) != 0) std::abort();
    std::ofstream(base + "/src/train.py") << "print('hello')\n";
    // Removed when the fuzzer exits, however many runs it made.
    static std::string to_remove = base;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    return base + "/job.json";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  trainrun::Result<trainrun::JobConfig> job = trainrun::ParseJobText(text, JobPath());
  if (!job.ok()) {
    // Every failure is a job-file error with words, never an empty message.
    if (job.status().message().empty()) std::abort();
    return 0;
  }
  trainrun::PlaceholderValues values;
  values.outputs = "/run/wd/outputs";
  for (const trainrun::DataReference& d : job->data) values.data[d.name] = "/run/data/" + d.name;
  for (const auto* list : {&job->arguments, &job->command}) {
    for (const std::string& item : *list) {
      // CheckPlaceholders accepted these while parsing, so they must expand.
      if (!trainrun::ExpandPlaceholders(item, values).ok()) std::abort();
    }
  }
  return 0;
}
