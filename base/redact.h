// Keeping secrets out of the run record, the logs and error messages.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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

// A command line with its secrets hidden, word by word:
//   --password hunter2        -> --password ***    (an option whose name IsSecretName
//   --hf-token=hf_abc         -> --hf-token=***     takes its value with it)
//   api_key=abc               -> api_key=***
//   sv=2020&sig=abc, ...;AccountKey=... -> ***      (a SAS or connection string)
//   https://u:p@host/x?sig=a  -> https://***@host/x?sig=***
// and every value registered with RegisterSecret, wherever it appears.
std::vector<std::string> RedactArguments(const std::vector<std::string>& argv);

// A copy of a job file's JSON with secret-looking environment variables replaced by
// "***", credentials removed from every URI, and `arguments`/`command` arrays
// redacted as command lines (RedactArguments).
nlohmann::json RedactJobJson(const nlohmann::json& job);

// Secrets known by value. Every credential trainrun reads (the job token, storage
// keys, SAS tokens, connection strings: each environment variable whose name
// IsSecretName) is registered once, and ScrubSecrets replaces each occurrence of a
// registered value in any text with "***" before it reaches a log, the console or
// the run record. Values shorter than kMinSecretLength are not registered (they
// would match ordinary text). Thread-safe.
constexpr size_t kMinSecretLength = 6;
void RegisterSecret(std::string_view value);
// Registers the value of every "NAME=value" entry whose NAME IsSecretName or whose
// value is a SAS or connection string; values that are absolute paths are not
// secrets (they say where one is) and are left alone.
void RegisterSecretsFromEnvironment(const char* const* environ);
std::string ScrubSecrets(std::string_view text);

}  // namespace trainrun
