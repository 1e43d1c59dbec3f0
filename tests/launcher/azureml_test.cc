// Azure ML run configurations end to end with the real trainrun: an Estimator-style
// YAML .runconfig runs unchanged (its fields translated or ignored with a line each,
// docker.shmSize checked against /dev/shm), and gets Azure ML's default of one
// process per node with all of its GPUs, where a trainrun job file gets one per GPU.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

using nlohmann::json;

class AzureMlRunConfigTest : public ::testing::Test {
 protected:
  AzureMlRunConfigTest() {
    WriteFile(dir_ / "project/train.py",
              "import os, sys\n"
              "print('argv', sys.argv[1:])\n"
              "for name in ('RANK', 'WORLD_SIZE', 'AZUREML_RUN_ID', 'AZUREML_DATAREFERENCE_mnist',"
              " 'GREETING', 'CUDA_VISIBLE_DEVICES'):\n"
              "    print(name, os.environ.get(name))\n"
              "print('data', open(os.path.join(sys.argv[sys.argv.index('--data') + 1],"
              " 'train.csv')).read().strip())\n"
              "os.makedirs('outputs', exist_ok=True)\n"
              "open('outputs/model.txt', 'w').write('trained')\n");
    WriteFile(dir_ / "store/datasets/mnist/train.csv", "1,2,3\n");
  }
  Invocation Run(const std::string& job, std::vector<std::string> more = {},
                 std::vector<std::string> env = {}) {
    std::vector<std::string> args = {"run",       job,          "--history", dir_ / "history",
                                     "--workdir", dir_ / "work"};
    args.insert(args.end(), more.begin(), more.end());
    return RunTrainrun(args, dir_.path(), env);
  }
  std::string Fixture(const std::string& name) {
    return SourceRoot() + "/tests/fixtures/topologies/" + name;
  }
  TempDir dir_;
};

TEST_F(AzureMlRunConfigTest, EstimatorStyleYamlRunConfigRunsUnchanged) {
  const std::string job = dir_ / "project/.azureml/train.runconfig";
  WriteFile(job,
            "# Estimator parameters and RunConfiguration fields, as an Azure ML user writes them\n"
            "entry_script: train.py\n"
            "script_params:\n"
            "  --epochs: 2\n"
            "  --fp16: ''\n"
            "  --data: $AZUREML_DATAREFERENCE_mnist\n"
            "target: gpu-cluster\n"
            "framework: Python\n"
            "experimentName: azureml\n"
            "runId: estimator-1\n"
            "node_count: 1\n"
            "environment:\n"
            "  name: my-env\n"
            "  python:\n"
            "    interpreterPath: python3\n"
            "    userManagedDependencies: true\n"
            "  docker:\n"
            "    baseImage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04\n"
            "environment_variables:\n"
            "  GREETING: hello\n"
            "datastores:\n"
            "  workspaceblobstore: " +
                (dir_ / "store") +
                "\n"
                "data:\n"
                "  mnist:\n"
                "    dataLocation:\n"
                "      dataset:\n"
                "      dataPath:\n"
                "        datastoreName: workspaceblobstore\n"
                "        relativePath: datasets/mnist\n"
                "    mechanism: Download\n"
                "docker:\n"
                "  useDocker: true\n"
                "  shmSize: 1048576g\n"
                "amlcompute:\n"
                "  vmSize: Standard_NC6\n");
  Invocation r = Run(job);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("argv ['--epochs', '2', '--fp16', '--data', '"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RANK 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("WORLD_SIZE 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("AZUREML_RUN_ID estimator-1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GREETING hello"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data 1,2,3"), std::string::npos) << r.out;
  const std::string console = r.out + r.err;
  for (const char* line :
       {"/entry_script: translated to script", "/script_params: translated to arguments",
        "/target: ignored: the compute target", "/environment/name: ignored",
        "/environment/docker/baseImage: ignored: the image is built", "/docker/useDocker: ignored",
        "/amlcompute: ignored",
        "/environment_variables: translated to environment.environmentVariables",
        "/data/mnist/dataLocation/dataPath: translated to uri",
        "1 process per node with all of the node's GPUs",
        "/docker/shmSize \"1048576g\" asks for 1048576 GiB of shared memory but /dev/shm has"}) {
    EXPECT_NE(console.find(line), std::string::npos) << line << "\n" << console;
  }
  // Once per field.
  const size_t first = console.find("/target: ignored");
  EXPECT_EQ(console.find("/target: ignored", first + 1), std::string::npos) << console;
  const std::string run = dir_ / "history/azureml/estimator-1";
  json record = json::parse(ReadFile(run + "/run.json"));
  EXPECT_EQ(record["status"], "Completed");
  EXPECT_EQ(ReadFile(run + "/outputs/model.txt"), "trained");
  // The record keeps the file as written.
  EXPECT_EQ(record["job"]["entry_script"], "train.py");
}

TEST_F(AzureMlRunConfigTest, AzureMlFilesGetOneProcessWithAllGpusTrainrunFilesOnePerGpu) {
  WriteFile(dir_ / "project/aml.runconfig", "script: train.py\nsourceDirectory: .\n");
  WriteFile(dir_ / "project/job.json", R"({"script": "train.py"})");
  const std::vector<std::string> dgx2 = {"--dry-run", "--topology-xml", Fixture("nvidiaDGX2.xml")};
  Invocation aml = Run(dir_ / "project/aml.runconfig", dgx2);
  ASSERT_EQ(aml.exit_code, 0) << aml.err;
  EXPECT_NE(aml.out.find("ranks:          1 (job file)"), std::string::npos) << aml.out;
  EXPECT_NE(aml.out.find("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"),
            std::string::npos)
      << aml.out;
  EXPECT_NE((aml.out + aml.err)
                .find("Azure ML job file (recognised by the name ending in "
                      ".runconfig): 1 process per node"),
            std::string::npos)
      << aml.err;
  Invocation own = Run(dir_ / "project/job.json", dgx2);
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_NE(own.out.find("ranks:          16 (one per GPU)"), std::string::npos) << own.out;
}

TEST_F(AzureMlRunConfigTest, InvalidYamlRunConfigExits65NamingTheLine) {
  const std::string job = dir_ / "project/bad.runconfig";
  WriteFile(job,
            "script: train.py\nsourceDirectory: .\ndata:\n  d:\n    dataLocation:\n"
            "      dataset: {id: 3b1e}\n");
  Invocation r = Run(job);
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find(job + ":6: /data/d/dataLocation/dataset: a registered dataset"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "history"));
}

}  // namespace
}  // namespace trainrun::testing
