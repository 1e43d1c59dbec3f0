// AWS Signature Version 4 for S3 and S3-compatible stores, and where the
// credentials come from:
//   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (temporary credentials)
//   AWS_REGION (else AWS_DEFAULT_REGION, else us-east-1)
//   AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL): an S3-compatible server (MinIO, Ceph,
//     R2, s3rver); addressed path-style (http://host:port/BUCKET/key)
// Without an access key, requests go unsigned (public buckets).
//
// Nothing here puts a secret or a signature into a message.
#pragma once

#include <string>
#include <string_view>

#include "base/clock.h"
#include "runtime/store/http_client.h"
#include "runtime/store/store.h"

namespace trainrun {

constexpr const char* kDefaultAwsRegion = "us-east-1";
// x-amz-content-sha256 for bodies not hashed into the signature (their integrity is
// checked by Content-MD5 instead, which costs a quarter of the CPU).
constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

struct S3Config {
  AwsCredentials credentials;
  std::string region = kDefaultAwsRegion;
  std::string endpoint;  // scheme://host[:port], "" for AWS itself
};

S3Config S3ConfigFromEnv(const EnvLookup& env);

// The pieces of SigV4, exposed for the known-answer tests.
std::string SigV4CanonicalQuery(std::string_view query);
// `headers` are the signed headers, names in any case, values as sent.
std::string SigV4CanonicalRequest(std::string_view method, std::string_view canonical_uri,
                                  std::string_view query, const HttpHeaders& headers,
                                  std::string_view payload_hash, std::string* signed_headers);
std::string SigV4SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                            std::string_view service);
// The Authorization header for a request. `amz_date` is "20150830T123600Z".
std::string SigV4Authorization(std::string_view method, std::string_view canonical_uri,
                               std::string_view query, const HttpHeaders& headers,
                               std::string_view payload_hash, const AwsCredentials& credentials,
                               std::string_view region, std::string_view service,
                               std::string_view amz_date);

// Signs `request` in place for S3: adds host, x-amz-date, x-amz-content-sha256,
// x-amz-security-token and Authorization (nothing when there is no access key).
void SignS3Request(HttpRequest* request, const S3Config& config, WallTime now,
                   std::string_view payload_hash);

// "20150830T123600Z".
std::string AmzDate(WallTime t);

}  // namespace trainrun
