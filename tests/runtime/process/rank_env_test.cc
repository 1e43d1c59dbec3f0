#include "runtime/process/rank_env.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace trainrun {
namespace {

std::string Get(const MergedEnvironment& env, const std::string& name) {
  for (const std::string& e : env.entries) {
    if (e.rfind(name + "=", 0) == 0) return e.substr(name.size() + 1);
  }
  return "<unset>";
}

TEST(RankEnvTest, ContractVariables) {
  RankContext c;
  c.rank = 5;
  c.local_rank = 1;
  c.world_size = 8;
  c.local_world_size = 4;
  c.node_rank = 1;
  c.node_count = 2;
  c.master_addr = "10.0.0.1";
  c.master_port = 29500;
  c.run_id = "r";
  c.outputs_dir = "/wd/outputs";
  c.logs_dir = "/wd/logs";
  c.data_paths = {{"mnist", "/data/mnist"}};
  c.data_env_names = {{"mnist", "MNIST_DIR"}};
  MergedEnvironment env = MergeEnvironment({"PATH=/bin"}, {}, RankVariables(c));
  EXPECT_EQ(Get(env, "RANK"), "5");
  EXPECT_EQ(Get(env, "LOCAL_RANK"), "1");
  EXPECT_EQ(Get(env, "WORLD_SIZE"), "8");
  EXPECT_EQ(Get(env, "LOCAL_WORLD_SIZE"), "4");
  EXPECT_EQ(Get(env, "NODE_RANK"), "1");
  EXPECT_EQ(Get(env, "GROUP_RANK"), "1");
  EXPECT_EQ(Get(env, "MASTER_ADDR"), "10.0.0.1");
  EXPECT_EQ(Get(env, "MASTER_PORT"), "29500");
  EXPECT_EQ(Get(env, "AZUREML_RUN_ID"), "r");
  EXPECT_EQ(Get(env, "TRAINRUN_OUTPUTS_DIR"), "/wd/outputs");
  EXPECT_EQ(Get(env, "AZUREML_DATAREFERENCE_mnist"), "/data/mnist");
  EXPECT_EQ(Get(env, "MNIST_DIR"), "/data/mnist");
  EXPECT_EQ(Get(env, "CUDA_DEVICE_ORDER"), "PCI_BUS_ID");
  EXPECT_EQ(Get(env, "PATH"), "/bin");
  EXPECT_TRUE(std::is_sorted(env.entries.begin(), env.entries.end()));
}

TEST(RankEnvTest, AttemptVariablesFollowTheAttempt) {
  RankContext c;
  c.max_restarts = 3;
  MergedEnvironment env = MergeEnvironment({"PATH=/bin"}, {}, RankVariables(c));
  EXPECT_EQ(Get(env, "TRAINRUN_ATTEMPT"), "1");
  EXPECT_EQ(Get(env, "TORCHELASTIC_RESTART_COUNT"), "0");
  EXPECT_EQ(Get(env, "TORCHELASTIC_MAX_RESTARTS"), "3");
  SetAttemptVariables(3, {}, &env.entries);
  EXPECT_EQ(Get(env, "TRAINRUN_ATTEMPT"), "3");
  EXPECT_EQ(Get(env, "TORCHELASTIC_RESTART_COUNT"), "2");
  EXPECT_EQ(Get(env, "TORCHELASTIC_MAX_RESTARTS"), "3");
  EXPECT_EQ(
      std::count_if(env.entries.begin(), env.entries.end(),
                    [](const std::string& e) { return e.rfind("TRAINRUN_ATTEMPT=", 0) == 0; }),
      1);
  // What the job file set stays, on every attempt.
  const std::vector<std::pair<std::string, std::string>> job = {{"TRAINRUN_ATTEMPT", "7"}};
  MergedEnvironment user = MergeEnvironment({}, job, RankVariables(c));
  SetAttemptVariables(2, job, &user.entries);
  EXPECT_EQ(Get(user, "TRAINRUN_ATTEMPT"), "7");
  EXPECT_EQ(Get(user, "TORCHELASTIC_RESTART_COUNT"), "1");
}

TEST(RankEnvTest, UserValuesAreNeverOverwrittenSilently) {
  RankContext c;
  c.rank = 3;
  std::vector<TrainrunVar> vars = RankVariables(c);
  vars.push_back({"OMP_NUM_THREADS", "8", TrainrunVar::Kind::kDefault});
  MergedEnvironment env = MergeEnvironment({"RANK=0", "OMP_NUM_THREADS=2", "PYTHONUNBUFFERED=0"},
                                           {{"WORLD_SIZE", "99"}, {"MY_FLAG", "on"}}, vars);
  // The container's RANK is about the pod, not the process: replaced, with a note.
  EXPECT_EQ(Get(env, "RANK"), "3");
  // The job file wins even over identity variables, with a warning.
  EXPECT_EQ(Get(env, "WORLD_SIZE"), "99");
  ASSERT_EQ(env.warnings.size(), 1u);
  EXPECT_NE(env.warnings[0].find("WORLD_SIZE=99 from the job file kept"), std::string::npos);
  // Defaults never replace the container's values.
  EXPECT_EQ(Get(env, "OMP_NUM_THREADS"), "2");
  EXPECT_EQ(Get(env, "PYTHONUNBUFFERED"), "0");
  EXPECT_EQ(Get(env, "MY_FLAG"), "on");
  std::string notes;
  for (const std::string& n : env.notes) notes += n + "\n";
  EXPECT_NE(notes.find("RANK=0 from the environment replaced"), std::string::npos) << notes;
  EXPECT_NE(notes.find("OMP_NUM_THREADS=2 from the environment kept"), std::string::npos) << notes;
}

TEST(RankEnvTest, SecretsInNotesAreRedacted) {
  std::vector<TrainrunVar> vars = {{"HF_TOKEN", "mine", TrainrunVar::Kind::kDefault}};
  MergedEnvironment env = MergeEnvironment({"HF_TOKEN=supersecret"}, {}, vars);
  ASSERT_EQ(env.notes.size(), 1u);
  EXPECT_EQ(env.notes[0].find("supersecret"), std::string::npos);
}

}  // namespace
}  // namespace trainrun
