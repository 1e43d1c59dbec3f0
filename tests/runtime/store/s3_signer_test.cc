// SigV4 against the known answers published in the AWS documentation.
#include "runtime/store/s3_signer.h"

#include <gtest/gtest.h>

#include "base/hashing.h"

namespace trainrun {
namespace {

// "Examples of how to derive a signing key for Signature Version 4".
TEST(SigV4Test, SigningKeyFromTheAwsDocs) {
  EXPECT_EQ(HexEncode(SigV4SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                      "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

// "Signature Version 4 test suite" / the IAM ListUsers walk-through.
TEST(SigV4Test, IamListUsersFromTheAwsDocs) {
  HttpHeaders headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                         {"Host", "iam.amazonaws.com"},
                         {"X-Amz-Date", "20150830T123600Z"}};
  const std::string empty_hash = HexEncode(Sha256(""));
  std::string signed_headers;
  std::string canonical = SigV4CanonicalRequest("GET", "/", "Action=ListUsers&Version=2010-05-08",
                                                headers, empty_hash, &signed_headers);
  EXPECT_EQ(canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
            "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
            "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256(canonical)),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  AwsCredentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  EXPECT_EQ(SigV4Authorization("GET", "/", "Action=ListUsers&Version=2010-05-08", headers,
                               empty_hash, creds, "us-east-1", "iam", "20150830T123600Z"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

const AwsCredentials kS3DocCreds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                 ""};

// S3 "Signature Calculations for the Authorization Header": GET Object.
TEST(SigV4Test, S3GetObjectFromTheAwsDocs) {
  const std::string empty_hash = HexEncode(Sha256(""));
  HttpHeaders headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                         {"Range", "bytes=0-9"},
                         {"x-amz-content-sha256", empty_hash},
                         {"x-amz-date", "20130524T000000Z"}};
  EXPECT_EQ(SigV4Authorization("GET", "/test.txt", "", headers, empty_hash, kS3DocCreds,
                               "us-east-1", "s3", "20130524T000000Z"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

// The same page: GET Bucket (List Objects) with a query string.
TEST(SigV4Test, S3ListObjectsFromTheAwsDocs) {
  const std::string empty_hash = HexEncode(Sha256(""));
  HttpHeaders headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                         {"x-amz-content-sha256", empty_hash},
                         {"x-amz-date", "20130524T000000Z"}};
  EXPECT_EQ(SigV4CanonicalQuery("prefix=J&max-keys=2"), "max-keys=2&prefix=J");
  EXPECT_EQ(SigV4Authorization("GET", "/", "max-keys=2&prefix=J", headers, empty_hash, kS3DocCreds,
                               "us-east-1", "s3", "20130524T000000Z"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

// The same page: PUT Object, with a '$' in the key and a signed payload.
TEST(SigV4Test, S3PutObjectFromTheAwsDocs) {
  const std::string payload_hash = HexEncode(Sha256("Welcome to Amazon S3."));
  EXPECT_EQ(payload_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  HttpHeaders headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                         {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                         {"x-amz-date", "20130524T000000Z"},
                         {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                         {"x-amz-content-sha256", payload_hash}};
  EXPECT_EQ(SigV4Authorization("PUT", "/" + UriEncode("test$file.text", true), "", headers,
                               payload_hash, kS3DocCreds, "us-east-1", "s3", "20130524T000000Z"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4Test, SignS3RequestAddsTheHeadersAndNoSecret) {
  S3Config config;
  config.credentials = {"AKID", "SECRETSECRET", "SESSIONTOKEN"};
  config.region = "eu-west-1";
  HttpRequest request;
  request.method = "GET";
  request.url = "http://127.0.0.1:9000/bucket/a%20b.txt?list-type=2";
  WallTime t = WallTime(std::chrono::seconds(1369353600));  // 2013-05-24
  SignS3Request(&request, config, t, HexEncode(Sha256("")));
  std::string auth;
  for (const auto& [k, v] : request.headers) {
    if (k == "Authorization") auth = v;
    EXPECT_EQ(v.find("SECRETSECRET"), std::string::npos) << k;
  }
  EXPECT_NE(auth.find("Credential=AKID/20130524/eu-west-1/s3/aws4_request"), std::string::npos)
      << auth;
  EXPECT_NE(auth.find("host;x-amz-content-sha256;x-amz-date;x-amz-security-token"),
            std::string::npos);

  HttpRequest anonymous;
  anonymous.url = "https://bucket.s3.amazonaws.com/key";
  SignS3Request(&anonymous, S3Config{}, t, "x");
  EXPECT_TRUE(anonymous.headers.empty());
}

TEST(SigV4Test, ConfigFromEnvironment) {
  std::map<std::string, std::string> vars = {{"AWS_ACCESS_KEY_ID", "id"},
                                             {"AWS_SECRET_ACCESS_KEY", "secret"},
                                             {"AWS_DEFAULT_REGION", "ap-south-1"},
                                             {"AWS_ENDPOINT_URL", "http://minio:9000/"}};
  EnvLookup env = [&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  S3Config c = S3ConfigFromEnv(env);
  EXPECT_EQ(c.region, "ap-south-1");
  EXPECT_EQ(c.endpoint, "http://minio:9000");
  vars["AWS_REGION"] = "eu-central-1";
  vars["AWS_ENDPOINT_URL_S3"] = "http://s3only:1";
  c = S3ConfigFromEnv(env);
  EXPECT_EQ(c.region, "eu-central-1");
  EXPECT_EQ(c.endpoint, "http://s3only:1");
}

}  // namespace
}  // namespace trainrun
