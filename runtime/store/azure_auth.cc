#include "runtime/store/azure_auth.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "base/hashing.h"
#include "base/text.h"

namespace trainrun {
namespace {

// Azurite's documented, public development account key.
constexpr const char* kAzuriteKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

std::string FindHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (ToLower(k) == name) return v;
  }
  return "";
}

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string IsoSeconds(WallTime t) {
  std::string iso = FormatIso8601(t);  // ...T00:21:29.123Z
  return iso.substr(0, 19) + "Z";
}

}  // namespace

Result<std::map<std::string, std::string>> ParseConnectionString(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = text.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return InvalidArgumentError(
          "AZURE_STORAGE_CONNECTION_STRING is malformed: expected Key=Value pairs separated "
          "by ';'");
    }
    out[std::string(part.substr(0, eq))] = std::string(part.substr(eq + 1));
  }
  return out;
}

Result<AzureCredentials> AzureCredentialsFor(const std::string& account, const EnvLookup& env) {
  AzureCredentials creds;
  creds.account = account;
  creds.endpoint = fmt::format("https://{}.blob.core.windows.net", account);
  const std::string connection = EnvString(env, "AZURE_STORAGE_CONNECTION_STRING");
  const std::string env_account = EnvString(env, "AZURE_STORAGE_ACCOUNT");
  bool have_secret = false;
  if (!connection.empty()) {
    TR_ASSIGN_OR_RETURN(auto parts, ParseConnectionString(connection));
    std::string name = parts.count("AccountName") ? parts["AccountName"] : "";
    if (parts.count("UseDevelopmentStorage") && ToLower(parts["UseDevelopmentStorage"]) == "true") {
      name = kAzuriteAccount;
      parts["AccountKey"] = kAzuriteKey;
      parts["BlobEndpoint"] = kAzuriteEndpoint;
    }
    if (name.empty() && parts.count("SharedAccessSignature") == 0) {
      return InvalidArgumentError(
          "AZURE_STORAGE_CONNECTION_STRING has neither AccountName nor SharedAccessSignature");
    }
    if (name.empty() || name == account) {
      std::string protocol =
          parts.count("DefaultEndpointsProtocol") ? parts["DefaultEndpointsProtocol"] : "https";
      if (parts.count("EndpointSuffix")) {
        creds.endpoint = fmt::format("{}://{}.blob.{}", protocol, account, parts["EndpointSuffix"]);
      }
      if (parts.count("BlobEndpoint")) creds.endpoint = parts["BlobEndpoint"];
      if (parts.count("AccountKey")) creds.account_key = parts["AccountKey"];
      if (parts.count("SharedAccessSignature")) creds.sas = parts["SharedAccessSignature"];
      creds.source = "AZURE_STORAGE_CONNECTION_STRING";
      have_secret = true;
    } else if (EnvString(env, "AZURE_STORAGE_KEY").empty() &&
               EnvString(env, "AZURE_STORAGE_SAS_TOKEN").empty()) {
      return InvalidArgumentError(fmt::format(
          "AZURE_STORAGE_CONNECTION_STRING is for account \"{}\", not \"{}\"", name, account));
    }
  }
  if (!have_secret) {
    std::string key = EnvString(env, "AZURE_STORAGE_KEY");
    if (key.empty()) key = EnvString(env, "AZURE_STORAGE_ACCESS_KEY");
    std::string sas = EnvString(env, "AZURE_STORAGE_SAS_TOKEN");
    if (!env_account.empty() && env_account != account && (!key.empty())) {
      return InvalidArgumentError(fmt::format(
          "AZURE_STORAGE_ACCOUNT is \"{}\" but the URI names account \"{}\"; the key in "
          "AZURE_STORAGE_KEY is not for it",
          env_account, account));
    }
    if (!key.empty()) {
      creds.account_key = key;
      creds.source = "AZURE_STORAGE_KEY";
    } else if (!sas.empty()) {
      creds.sas = sas[0] == '?' ? sas.substr(1) : sas;
      creds.source = "AZURE_STORAGE_SAS_TOKEN";
    } else {
      creds.source = "no credentials (anonymous access)";
    }
  }
  if (!creds.account_key.empty()) {
    std::string raw;
    if (!Base64Decode(creds.account_key, &raw) || raw.empty()) {
      return InvalidArgumentError(
          fmt::format("the account key in {} is not valid base64", creds.source));
    }
  }
  if (!creds.sas.empty() && creds.sas[0] == '?') creds.sas.erase(0, 1);
  std::string endpoint = EnvString(env, "AZURE_STORAGE_BLOB_ENDPOINT");
  if (!endpoint.empty()) creds.endpoint = endpoint;
  creds.endpoint = StripSlash(creds.endpoint);
  ParsedUrl parsed;
  if (!ParseUrl(creds.endpoint, &parsed)) {
    return InvalidArgumentError(
        fmt::format("blob endpoint \"{}\" is not an http:// or https:// URL", creds.endpoint));
  }
  return creds;
}

std::string SharedKeyStringToSign(std::string_view method, const HttpHeaders& headers,
                                  uint64_t content_length, std::string_view account,
                                  std::string_view path, std::string_view query) {
  std::string s = std::string(method) + "\n";
  for (const char* name : {"content-encoding", "content-language"})
    s += FindHeader(headers, name) + "\n";
  s += (content_length > 0 ? std::to_string(content_length) : "") + "\n";
  for (const char* name : {"content-md5", "content-type", "date", "if-modified-since", "if-match",
                           "if-none-match", "if-unmodified-since", "range"}) {
    s += FindHeader(headers, name) + "\n";
  }
  std::vector<std::pair<std::string, std::string>> ms;
  for (const auto& [k, v] : headers) {
    std::string name = ToLower(k);
    if (name.rfind("x-ms-", 0) == 0) ms.emplace_back(name, v);
  }
  std::sort(ms.begin(), ms.end());
  for (const auto& [k, v] : ms) s += k + ":" + v + "\n";
  s += "/" + std::string(account) + std::string(path);
  // Query parameters: lowercase names, sorted, decoded values joined by ','.
  std::map<std::string, std::vector<std::string>> params;
  for (auto& [name, value] : ParseQuery(query)) params[ToLower(name)].push_back(std::move(value));
  for (auto& [name, values] : params) {
    std::sort(values.begin(), values.end());
    std::string joined;
    for (size_t i = 0; i < values.size(); ++i) joined += (i ? "," : "") + values[i];
    s += "\n" + name + ":" + joined;
  }
  return s;
}

Result<std::string> SharedKeyAuthorization(std::string_view account, std::string_view key_base64,
                                           std::string_view string_to_sign) {
  std::string key;
  if (!Base64Decode(key_base64, &key))
    return InvalidArgumentError("the account key is not valid base64");
  return fmt::format("SharedKey {}:{}", account, Base64Encode(HmacSha256(key, string_to_sign)));
}

Result<std::string> ContainerSas(std::string_view account, std::string_view key_base64,
                                 std::string_view container, std::string_view permissions,
                                 WallTime expiry, bool allow_http) {
  std::string key;
  if (!Base64Decode(key_base64, &key))
    return InvalidArgumentError("the account key is not valid base64");
  const std::string version = "2020-02-10";
  const std::string se = IsoSeconds(expiry);
  const std::string spr = allow_http ? "https,http" : "https";
  // The 2018-11-09 layout: sp, st, se, resource, si, sip, spr, sv, sr, snapshot,
  // rscc, rscd, rsce, rscl, rsct.
  std::string to_sign = fmt::format("{}\n\n{}\n/blob/{}/{}\n\n\n{}\n{}\nc\n\n\n\n\n\n", permissions,
                                    se, account, container, spr, version);
  std::string sig = Base64Encode(HmacSha256(key, to_sign));
  return fmt::format("sv={}&spr={}&se={}&sr=c&sp={}&sig={}", version, UriEncode(spr, false),
                     UriEncode(se, false), permissions, UriEncode(sig, false));
}

}  // namespace trainrun
