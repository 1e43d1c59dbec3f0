#include "runtime/store/s3_signer.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "base/hashing.h"
#include "base/text.h"

namespace trainrun {
namespace {

// Header values: trimmed, runs of spaces folded into one.
std::string CanonicalValue(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

S3Config S3ConfigFromEnv(const EnvLookup& env) {
  S3Config config;
  config.credentials.access_key_id = EnvString(env, "AWS_ACCESS_KEY_ID");
  config.credentials.secret_access_key = EnvString(env, "AWS_SECRET_ACCESS_KEY");
  config.credentials.session_token = EnvString(env, "AWS_SESSION_TOKEN");
  std::string region = EnvString(env, "AWS_REGION");
  if (region.empty()) region = EnvString(env, "AWS_DEFAULT_REGION");
  if (!region.empty()) config.region = region;
  config.endpoint = EnvString(env, "AWS_ENDPOINT_URL_S3");
  if (config.endpoint.empty()) config.endpoint = EnvString(env, "AWS_ENDPOINT_URL");
  while (!config.endpoint.empty() && config.endpoint.back() == '/') config.endpoint.pop_back();
  return config;
}

std::string SigV4CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& [name, value] : ParseQuery(query)) {
    params.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

std::string SigV4CanonicalRequest(std::string_view method, std::string_view canonical_uri,
                                  std::string_view query, const HttpHeaders& headers,
                                  std::string_view payload_hash, std::string* signed_headers) {
  std::vector<std::pair<std::string, std::string>> canon;
  for (const auto& [k, v] : headers) canon.emplace_back(ToLower(k), CanonicalValue(v));
  std::sort(canon.begin(), canon.end());
  std::string header_block, names;
  for (const auto& [k, v] : canon) {
    header_block += k + ":" + v + "\n";
    names += (names.empty() ? "" : ";") + k;
  }
  if (signed_headers != nullptr) *signed_headers = names;
  return fmt::format("{}\n{}\n{}\n{}\n{}\n{}", method, canonical_uri.empty() ? "/" : canonical_uri,
                     SigV4CanonicalQuery(query), header_block, names, payload_hash);
}

std::string SigV4SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                            std::string_view service) {
  std::string k = HmacSha256("AWS4" + std::string(secret), date);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

std::string SigV4Authorization(std::string_view method, std::string_view canonical_uri,
                               std::string_view query, const HttpHeaders& headers,
                               std::string_view payload_hash, const AwsCredentials& credentials,
                               std::string_view region, std::string_view service,
                               std::string_view amz_date) {
  std::string signed_headers;
  std::string canonical =
      SigV4CanonicalRequest(method, canonical_uri, query, headers, payload_hash, &signed_headers);
  std::string date(amz_date.substr(0, 8));
  std::string scope = fmt::format("{}/{}/{}/aws4_request", date, region, service);
  std::string to_sign =
      fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", amz_date, scope, HexEncode(Sha256(canonical)));
  std::string signature = HexEncode(
      HmacSha256(SigV4SigningKey(credentials.secret_access_key, date, region, service), to_sign));
  return fmt::format("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
                     credentials.access_key_id, scope, signed_headers, signature);
}

void SignS3Request(HttpRequest* request, const S3Config& config, WallTime now,
                   std::string_view payload_hash) {
  if (config.credentials.access_key_id.empty()) return;
  ParsedUrl url;
  ParseUrl(request->url, &url);
  const std::string amz_date = AmzDate(now);
  request->headers.emplace_back("x-amz-date", amz_date);
  request->headers.emplace_back("x-amz-content-sha256", std::string(payload_hash));
  if (!config.credentials.session_token.empty()) {
    request->headers.emplace_back("x-amz-security-token", config.credentials.session_token);
  }
  // Sign every header we send, plus Host (which curl sends from the URL).
  HttpHeaders signed_headers = request->headers;
  signed_headers.emplace_back("host", url.host);
  request->headers.emplace_back(
      "Authorization",
      SigV4Authorization(request->method, url.path, url.query, signed_headers, payload_hash,
                         config.credentials, config.region, "s3", amz_date));
}

std::string AmzDate(WallTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace trainrun
