// Azure Storage credentials and request signing (Shared Key, SAS).
//
// Where credentials come from, first match wins, for the account an az:// URI names:
// clang-format off
//   AZURE_STORAGE_CONNECTION_STRING  AccountName, AccountKey, SharedAccessSignature,
//                                    BlobEndpoint, EndpointSuffix, DefaultEndpointsProtocol,
//                                    or UseDevelopmentStorage=true (Azurite's defaults)
//   AZURE_STORAGE_KEY (or AZURE_STORAGE_ACCESS_KEY)   the account key (Shared Key)
//   AZURE_STORAGE_SAS_TOKEN          a SAS token ("sv=...&sig=...", '?' optional)
//   nothing                          anonymous (public containers only)
// clang-format on
// AZURE_STORAGE_ACCOUNT, when set, must name the URI's account for the key to apply.
// AZURE_STORAGE_BLOB_ENDPOINT overrides the endpoint (https://ACCOUNT.blob.core.windows.net):
// Azurite (http://127.0.0.1:10000/devstoreaccount1) or a sovereign cloud
// (https://ACCOUNT.blob.core.chinacloudapi.cn).
//
// Nothing here puts a key, a signature or a SAS into a message.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "runtime/store/http_client.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr const char* kAzureApiVersion = "2021-12-02";
constexpr const char* kAzuriteAccount = "devstoreaccount1";
constexpr const char* kAzuriteEndpoint = "http://127.0.0.1:10000/devstoreaccount1";

struct AzureCredentials {
  std::string account;
  std::string endpoint;     // scheme://host[:port][/path], no trailing '/'
  std::string account_key;  // base64, empty when not using Shared Key
  std::string sas;          // without '?', empty when not using a SAS
  std::string source;       // which variable they came from, for messages
};

// "Key=Value;Key=Value" with case-sensitive keys as Azure writes them. Values may
// contain '=' (keys, signatures). kInvalidArgument for a malformed string; the
// message never quotes it.
Result<std::map<std::string, std::string>> ParseConnectionString(std::string_view text);

// The credentials for `account` from the environment (see the top of this file).
Result<AzureCredentials> AzureCredentialsFor(const std::string& account, const EnvLookup& env);

// The Shared Key string-to-sign for a request (Blob service, version 2015-02-21 or
// later): verb, the standard headers, canonicalized x-ms-* headers and resource.
// `content_length` is the body size (0 for none). `path` is the URL path as sent
// (encoded); `query` the raw query without '?'.
std::string SharedKeyStringToSign(std::string_view method, const HttpHeaders& headers,
                                  uint64_t content_length, std::string_view account,
                                  std::string_view path, std::string_view query);

// "SharedKey ACCOUNT:SIGNATURE" for a string-to-sign. kInvalidArgument when the key
// is not base64.
Result<std::string> SharedKeyAuthorization(std::string_view account, std::string_view key_base64,
                                           std::string_view string_to_sign);

// A service SAS (query string, no '?') for a whole container, as rclone mounts want
// it: `permissions` such as "rl", valid until `expiry`, HTTPS-only unless
// `allow_http`.
Result<std::string> ContainerSas(std::string_view account, std::string_view key_base64,
                                 std::string_view container, std::string_view permissions,
                                 WallTime expiry, bool allow_http);

}  // namespace trainrun
