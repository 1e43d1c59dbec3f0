#include "runtime/run/placeholders.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(PlaceholdersTest, ExpandsDataOutputsAndAzureMlVariables) {
  PlaceholderValues v;
  v.data = {{"mnist", "/mnt/mnist"}, {"mnist_test", "/mnt/test"}};
  v.outputs = "/run/wd/outputs";
  EXPECT_EQ(*ExpandPlaceholders("--data={{data.mnist}}", v), "--data=/mnt/mnist");
  EXPECT_EQ(*ExpandPlaceholders("{{ outputs }}/model.pt", v), "/run/wd/outputs/model.pt");
  EXPECT_EQ(*ExpandPlaceholders("$AZUREML_DATAREFERENCE_mnist/train", v), "/mnt/mnist/train");
  // The longest name wins.
  EXPECT_EQ(*ExpandPlaceholders("$AZUREML_DATAREFERENCE_mnist_test", v), "/mnt/test");
  // Unknown $AZUREML_ names are left alone: they may be the user's own text.
  EXPECT_EQ(*ExpandPlaceholders("$AZUREML_DATAREFERENCE_other", v), "$AZUREML_DATAREFERENCE_other");
  EXPECT_EQ(*ExpandPlaceholders("plain $HOME", v), "plain $HOME");
}

TEST(PlaceholdersTest, ErrorsSayWhatIsWrong) {
  EXPECT_NE(CheckPlaceholders("{{data.x}}", {}).message().find("the job has none"),
            std::string::npos);
  EXPECT_NE(
      CheckPlaceholders("{{data.mnsit}}", {"mnist"}).message().find("did you mean {{data.mnist}}"),
      std::string::npos);
  EXPECT_NE(CheckPlaceholders("{{data.zzzzzz}}", {"mnist"}).message().find("known: mnist"),
            std::string::npos);
  EXPECT_NE(CheckPlaceholders("{{foo}}", {}).message().find("unknown placeholder {{foo}}"),
            std::string::npos);
  EXPECT_NE(CheckPlaceholders("{{outputs", {}).message().find("unclosed"), std::string::npos);
  EXPECT_TRUE(CheckPlaceholders("{{outputs}} {{data.a}}", {"a"}).ok());
}

}  // namespace
}  // namespace trainrun
