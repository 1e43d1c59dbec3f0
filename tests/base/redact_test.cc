#include "base/redact.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace trainrun {
namespace {

TEST(RedactTest, SecretNames) {
  for (const char* name :
       {"AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "GITHUB_TOKEN", "DB_PASSWORD", "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "WANDB_API_KEY", "MY_APIKEY",
        "TRAINRUN_JOB_TOKEN", "api-key"}) {
    EXPECT_TRUE(IsSecretName(name)) << name;
  }
  for (const char* name : {"PATH", "PWD", "OLDPWD", "TOKENIZERS_PARALLELISM", "KEYBOARD", "MONKEY",
                           "RANK", "AUTHOR"}) {
    EXPECT_FALSE(IsSecretName(name)) << name;
  }
}

TEST(RedactTest, Uris) {
  EXPECT_EQ(RedactUri("https://user:pw@host/x"), "https://***@host/x");
  EXPECT_EQ(RedactUri("https://acct.blob.core.windows.net/c/b?sv=2020&sig=abc"),
            "https://acct.blob.core.windows.net/c/b?sv=***&sig=***");
  EXPECT_EQ(RedactUri("https://s3/b/k?X-Amz-Signature=abc&part=1"),
            "https://s3/b/k?X-Amz-Signature=***&part=1");
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

TEST(RedactTest, ArgumentsHideSecretOptionsTheirValuesAndCredentialWords) {
  std::vector<std::string> argv = {"train.py",
                                   "--password",
                                   "hunter2",
                                   "--hf-token=hf_abcdef",
                                   "--epochs",
                                   "3",
                                   "sv=2020-08-04&ss=b&sig=abc%3D",
                                   "api_key=xyz123",
                                   "--conn",
                                   "DefaultEndpointsProtocol=https;AccountKey=k==",
                                   "--url",
                                   "https://u:pw@host/d?sig=s",
                                   "--keyboard",
                                   "us",
                                   "--token",
                                   "--verbose"};
  std::vector<std::string> out = RedactArguments(argv);
  std::vector<std::string> want = {
      "train.py",   "--password", "***",     "--hf-token=***",
      "--epochs",   "3",          "***",     "api_key=***",
      "--conn",     "***",        "--url",   "https://***@host/d?sig=***",
      "--keyboard", "us",         "--token", "--verbose"};
  EXPECT_EQ(out, want);
}

TEST(RedactTest, JobJsonRedactsArgumentsAsACommandLine) {
  auto job = nlohmann::json::parse(R"({
    "Arguments": ["--password", 12345678, "--lr", 0.1, "--api-key=abc"],
    "command": ["python3", "t.py", "--secret", "s3cr3t"]
  })");
  nlohmann::json out = RedactJobJson(job);
  EXPECT_EQ(out["Arguments"][1], "***");
  EXPECT_EQ(out["Arguments"][3], 0.1);
  EXPECT_EQ(out["Arguments"][4], "--api-key=***");
  EXPECT_EQ(out["command"][3], "***");
}

TEST(RedactTest, RegisteredSecretValuesAreScrubbedEverywhere) {
  const char* env[] = {"PATH=/usr/bin",
                       "TRAINRUN_JOB_TOKEN=tok-0123456789abcdef",
                       "AZURE_STORAGE_KEY=c2VjcmV0a2V5PT0=",
                       "SHORT_TOKEN=abc",
                       "MY_SAS=sv=2020&sig=zzzzzzzz",
                       "PWD=/work/main",
                       "GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp/key.json",
                       nullptr};
  RegisterSecretsFromEnvironment(env);
  EXPECT_EQ(ScrubSecrets("connect with tok-0123456789abcdef to c2VjcmV0a2V5PT0= ok"),
            "connect with *** to *** ok");
  EXPECT_EQ(ScrubSecrets("sas sv=2020&sig=zzzzzzzz"), "sas ***");
  // Too short to register: it would match ordinary text.
  EXPECT_EQ(ScrubSecrets("abc"), "abc");
  EXPECT_EQ(ScrubSecrets("/usr/bin"), "/usr/bin");
  // Paths are where secrets live, not secrets: messages keep them.
  EXPECT_EQ(ScrubSecrets("/work/main/build and /etc/gcp/key.json"),
            "/work/main/build and /etc/gcp/key.json");
  // A secret inside an argument with no secret-looking name is still hidden.
  EXPECT_EQ(RedactArguments({"--opaque", "x-tok-0123456789abcdef-y"})[1], "x-***-y");
  EXPECT_EQ(RedactValue("NOTE", "uses c2VjcmV0a2V5PT0="), "uses ***");
}

}  // namespace
}  // namespace trainrun
