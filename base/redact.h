// Keeping secrets out of the run record, the logs and error messages.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace trainrun {

constexpr const char* kRedacted = "***";

// Whether an environment variable or field name looks like it holds a secret:
// it contains SECRET, PASSWORD, PASSWD, CREDENTIAL or APIKEY, or has a '_'-separated
// word KEY, PWD, AUTH, SAS, SIGNATURE, CONNECTION or one ending in TOKEN (as in
// AZURE_STORAGE_CONNECTION_STRING, AWS_SECRET_ACCESS_KEY, HF_TOKEN; not
// TOKENIZERS_PARALLELISM).
bool IsSecretName(std::string_view name);

// Removes credentials from a URI: "user:pass@" and query parameters that sign or
// authorise (sig, signature, token, X-Amz-*, se/sp/sv... of an Azure SAS).
std::string RedactUri(std::string_view uri);

// `value`, or "***" when `name` looks secret; URIs inside are redacted either way.
std::string RedactValue(std::string_view name, std::string_view value);

// A copy of a job file's JSON with secret-looking environment variables replaced by
// "***" and credentials removed from every URI.
nlohmann::json RedactJobJson(const nlohmann::json& job);

}  // namespace trainrun
