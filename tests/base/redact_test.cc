#include "base/redact.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace trainrun {
namespace {

TEST(RedactTest, SecretNames) {
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "GITHUB_TOKEN", "DB_PASSWORD",
                           "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN",
                           "WANDB_API_KEY", "MY_APIKEY", "TRAINRUN_JOB_TOKEN", "api-key"}) {
    EXPECT_TRUE(IsSecretName(name)) << name;
  }
  for (const char* name : {"PATH", "TOKENIZERS_PARALLELISM", "KEYBOARD", "MONKEY", "RANK", "AUTHOR"}) {
    EXPECT_FALSE(IsSecretName(name)) << name;
  }
}

TEST(RedactTest, Uris) {
  EXPECT_EQ(RedactUri("https://user:pw@host/x"), "https://***@host/x");
  EXPECT_EQ(RedactUri("https://acct.blob.core.windows.net/c/b?sv=2020&sig=abc"),
            "https://acct.blob.core.windows.net/c/b?sv=***&sig=***");
  EXPECT_EQ(RedactUri("https://s3/b/k?X-Amz-Signature=abc&part=1"), "https://s3/b/k?X-Amz-Signature=***&part=1");
  EXPECT_EQ(RedactUri("file:///data/mnist"), "file:///data/mnist");
  EXPECT_EQ(RedactValue("CONN", "DefaultEndpointsProtocol=https;AccountKey=abc=="), "***");
}

TEST(RedactTest, JobJsonKeepsShapeAndHidesSecrets) {
  auto job = nlohmann::json::parse(R"({
    "environment": {"environmentVariables": {"HF_TOKEN": "hf_abc", "EPOCHS": "3"}},
    "arguments": ["--url", "https://u:p@example.com/data"],
    "data": {"d": {"dataLocation": {"uri": "https://a.blob.core.windows.net/c?sig=zzz"}}}
  })");
  nlohmann::json out = RedactJobJson(job);
  EXPECT_EQ(out["environment"]["environmentVariables"]["HF_TOKEN"], "***");
  EXPECT_EQ(out["environment"]["environmentVariables"]["EPOCHS"], "3");
  EXPECT_EQ(out["arguments"][1], "https://***@example.com/data");
  std::string dumped = out.dump();
  EXPECT_EQ(dumped.find("hf_abc"), std::string::npos);
  EXPECT_EQ(dumped.find("zzz"), std::string::npos);
  EXPECT_EQ(dumped.find(":p@"), std::string::npos);
}

}  // namespace
}  // namespace trainrun
