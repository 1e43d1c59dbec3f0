// Shared Key string-to-sign as the "Authorize with Shared Key" page lays it out,
// signatures, SAS, connection strings and where credentials come from.
#include "runtime/store/azure_auth.h"

#include <map>

#include <gtest/gtest.h>

#include "base/hashing.h"

namespace trainrun {
namespace {

constexpr const char* kKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

EnvLookup MapEnv(const std::map<std::string, std::string>& vars) {
  auto copy = std::make_shared<std::map<std::string, std::string>>(vars);
  return [copy](const char* n) -> const char* {
    auto it = copy->find(n);
    return it == copy->end() ? nullptr : it->second.c_str();
  };
}

// The docs' canonicalized-resource example: query parameters lowercased, sorted,
// repeated values joined with ','.
TEST(SharedKeyTest, CanonicalizedResourceFromTheDocs) {
  HttpHeaders headers = {{"x-ms-version", "2021-12-02"},
                         {"x-ms-date", "Sun, 22 Nov 2026 00:21:29 GMT"}};
  std::string s = SharedKeyStringToSign(
      "GET", headers, 0, "myaccount", "/mycontainer",
      "restype=container&comp=list&include=snapshots&include=metadata&include=uncommittedblobs");
  EXPECT_EQ(s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\n"
            "x-ms-date:Sun, 22 Nov 2026 00:21:29 GMT\nx-ms-version:2021-12-02\n"
            "/myaccount/mycontainer\ncomp:list\ninclude:metadata,snapshots,uncommittedblobs\n"
            "restype:container");
  // HMAC-SHA256 of that string with the key, computed independently (Python hmac).
  EXPECT_EQ(*SharedKeyAuthorization("myaccount", kKey, s),
            "SharedKey myaccount:1GO+DM7FGabhWLpvnOYo6X87B3VaUhcfaD0kbG4lNbU=");
}

TEST(SharedKeyTest, PutBlobStringToSign) {
  HttpHeaders headers = {{"x-ms-blob-type", "BlockBlob"},
                         {"Content-MD5", Base64Encode(Md5("hello world"))},
                         {"x-ms-date", "Sun, 22 Nov 2026 00:21:29 GMT"},
                         {"x-ms-version", "2021-12-02"}};
  std::string s = SharedKeyStringToSign("PUT", headers, 11, "devstoreaccount1",
                                        "/devstoreaccount1/c/a%20b.txt", "");
  EXPECT_EQ(s,
            "PUT\n\n\n11\nXrY7u+Ae7tCTyyK7j1rNww==\n\n\n\n\n\n\n\n"
            "x-ms-blob-type:BlockBlob\nx-ms-date:Sun, 22 Nov 2026 00:21:29 GMT\n"
            "x-ms-version:2021-12-02\n/devstoreaccount1/devstoreaccount1/c/a%20b.txt");
  EXPECT_EQ(*SharedKeyAuthorization("devstoreaccount1", kKey, s),
            "SharedKey devstoreaccount1:jdo7paINbDCxn6r5kedTQwIXEebuKyk5wXHJe25nbAg=");
  EXPECT_FALSE(SharedKeyAuthorization("a", "not base64!", s).ok());
}

TEST(SharedKeyTest, ContainerSasHasEveryFieldAndASignature) {
  WallTime expiry = WallTime(std::chrono::seconds(1800000000));  // 2027-01-15T08:00:00Z
  Result<std::string> sas = ContainerSas("acct", kKey, "data", "rl", expiry, false);
  ASSERT_TRUE(sas.ok());
  EXPECT_NE(sas->find("sv=2020-02-10"), std::string::npos) << *sas;
  EXPECT_NE(sas->find("se=2027-01-15T08%3A00%3A00Z"), std::string::npos) << *sas;
  EXPECT_NE(sas->find("sr=c&sp=rl&sig="), std::string::npos) << *sas;
  EXPECT_NE(sas->find("spr=https&"), std::string::npos) << *sas;
}

TEST(AzureCredentialsTest, ConnectionStrings) {
  auto parts = ParseConnectionString(
      "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k==;EndpointSuffix=core."
      "chinacloudapi.cn");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)["AccountKey"], "k==");
  Status bad = ParseConnectionString("AccountKey").status();
  EXPECT_FALSE(bad.ok());

  auto c = AzureCredentialsFor(
      "a", MapEnv({{"AZURE_STORAGE_CONNECTION_STRING",
                    std::string("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=") + kKey +
                        ";EndpointSuffix=core.chinacloudapi.cn"}}));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->endpoint, "https://a.blob.core.chinacloudapi.cn");
  EXPECT_EQ(c->account_key, kKey);

  c = AzureCredentialsFor(
      "devstoreaccount1",
      MapEnv({{"AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:10000/devstoreaccount1");

  // A connection string for another account is an error that names both, not the key.
  c = AzureCredentialsFor("other", MapEnv({{"AZURE_STORAGE_CONNECTION_STRING",
                                            std::string("AccountName=a;AccountKey=") + kKey}}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("\"other\""), std::string::npos);
  EXPECT_EQ(c.status().message().find(kKey), std::string::npos);
}

TEST(AzureCredentialsTest, KeySasAnonymousAndEndpointOverride) {
  auto c = AzureCredentialsFor("acct", MapEnv({{"AZURE_STORAGE_KEY", kKey}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->endpoint, "https://acct.blob.core.windows.net");
  EXPECT_EQ(c->source, "AZURE_STORAGE_KEY");

  c = AzureCredentialsFor("acct",
                          MapEnv({{"AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=abc"},
                                  {"AZURE_STORAGE_BLOB_ENDPOINT", "http://127.0.0.1:1/acct/"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->sas, "sv=1&sig=abc");
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:1/acct");

  c = AzureCredentialsFor("acct", MapEnv({}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->account_key.empty() && c->sas.empty());

  c = AzureCredentialsFor("acct",
                          MapEnv({{"AZURE_STORAGE_KEY", kKey}, {"AZURE_STORAGE_ACCOUNT", "zzz"}}));
  EXPECT_FALSE(c.ok());

  c = AzureCredentialsFor("acct", MapEnv({{"AZURE_STORAGE_KEY", "%%%not-base64"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("%%%"), std::string::npos);
}

}  // namespace
}  // namespace trainrun
