// Data references: making each `data.<name>` of the job available to the ranks.
//
//   mount     a read-only bind mount of the source at pathOnCompute when trainrun may
//             mount (in a private mount namespace, so it vanishes with the run);
//             otherwise a symlink, and the system log says which
//   download  a copy, after checking there is room for it
//   direct    the location itself, as given
//
// Local paths and file:// URIs work here; object stores come with their own issue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/job_config.h"
#include "runtime/reporter.h"
#include "runtime/status.h"

namespace trainrun {

struct PreparedData {
  std::string name;
  std::string path;     // what the ranks get: a local path, or the URI for direct
  std::string source;   // the resolved location
  std::string method;   // "read-only bind mount", "symlink", "copy", "direct"
  uint64_t files = 0;   // copied, for download
  uint64_t bytes = 0;
};

class DataPreparer {
 public:
  // `job_dir` resolves relative locations; `workdir` (the ranks' cwd) resolves
  // relative pathOnCompute; `data_dir` holds the defaults (<data_dir>/<name>).
  DataPreparer(std::string job_dir, std::string workdir, std::string data_dir, Reporter* reporter);
  // Unmounts what Prepare() mounted.
  ~DataPreparer();

  // Makes one reference available. Errors name the reference (data.<name>) and the
  // path at fault; a missing source is kNotFound, an object store kNotSupported.
  Result<PreparedData> Prepare(const DataReference& ref);

  // The local path a reference resolves to, without preparing anything (dry runs).
  std::string PlannedPath(const DataReference& ref) const;

 private:
  Result<std::string> ResolveSource(const DataReference& ref) const;
  Status Mount(const std::string& source, const std::string& target, PreparedData* out);
  Status Download(const DataReference& ref, const std::string& source,
                  const std::string& target, PreparedData* out);

  std::string job_dir_;
  std::string workdir_;
  std::string data_dir_;
  Reporter* reporter_;
  std::vector<std::string> mounts_;
};

}  // namespace trainrun
