// Argument placeholders: {{data.NAME}}, {{outputs}} and $AZUREML_DATAREFERENCE_NAME.
//
// Checked when the job file is read (an unknown {{...}} is a job-file error) and
// expanded once the paths are known, just before the ranks start. Nothing here runs
// a shell: the expanded strings go into argv as they are.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace trainrun {

struct PlaceholderValues {
  std::map<std::string, std::string> data;  // data reference name -> its path (or URI)
  std::string outputs;                      // absolute path of ./outputs
};

// Checks every {{...}} in `text` against the data reference names. The error
// message is about `text` alone; the caller adds the field.
Status CheckPlaceholders(std::string_view text, const std::vector<std::string>& data_names);

// Replaces the placeholders. {{...}} that CheckPlaceholders accepts always expand;
// $AZUREML_DATAREFERENCE_X with an X that is not a data reference stays as it is.
Result<std::string> ExpandPlaceholders(std::string_view text, const PlaceholderValues& values);

}  // namespace trainrun
