// Azure ML run configurations: every field honoured, translated, ignored with a note,
// or refused (runtime/run/azureml_config.h), in JSON and YAML.
#include "runtime/run/azureml_config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "runtime/run/job_config.h"
#include "runtime/run/yaml_json.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;
using testing::WriteFile;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Testdata(const std::string& name) {
  return std::string(TRAINRUN_SOURCE_DIR) + "/tests/runtime/run/testdata/" + name;
}

bool HasNote(const JobConfig& job, const std::string& part) {
  return std::any_of(job.azureml.notes.begin(), job.azureml.notes.end(),
                     [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

class AzureMlConfigTest : public ::testing::Test {
 protected:
  AzureMlConfigTest() { WriteFile(dir_ / "train.py", "print('hi')\n"); }
  Result<JobConfig> Parse(const std::string& text, const std::string& name = "job.json") {
    return ParseJobText(text, dir_ / name);
  }
  std::string Error(const std::string& text, const std::string& name = "job.json") {
    Result<JobConfig> job = Parse(text, name);
    if (job.ok()) return "";
    EXPECT_EQ(job.status().code(), StatusCode::kInvalidJob);
    return job.status().message();
  }
  TempDir dir_;
};

TEST_F(AzureMlConfigTest, SavedDefaultRunConfigurationInYamlLoads) {
  Result<JobConfig> job = Parse(ReadText(Testdata("default.runconfig")), "default.runconfig");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->script, "train.py");
  EXPECT_TRUE(job->command.empty());
  EXPECT_EQ(job->node_count, 1);
  EXPECT_EQ(job->communicator, Communicator::kNone);
  EXPECT_EQ(job->interpreter_path, "python");
  EXPECT_EQ(
      job->environment_variables,
      (std::vector<std::pair<std::string, std::string>>{{"EXAMPLE_ENV_VAR", "EXAMPLE_VALUE"}}));
  EXPECT_EQ(job->history.directories_to_watch, std::vector<std::string>{"logs"});
  EXPECT_TRUE(job->azureml.recognised);
  // Azure ML's default: one process with all of the node's GPUs.
  EXPECT_EQ(job->process_count_per_node, 1);
  EXPECT_EQ(job->gpus_per_process, 0);
  EXPECT_EQ(job->azureml.shm_size_bytes, uint64_t{2} << 30);
  EXPECT_EQ(job->azureml.shm_size_field, "/docker/shmSize");
  // One line per ignored field that says something, none for empty ones.
  EXPECT_TRUE(HasNote(*job, "/target: ignored: the compute target")) << job->azureml.notes[0];
  EXPECT_TRUE(HasNote(*job, "/environment/docker/baseImage: ignored: the image is built"));
  EXPECT_TRUE(HasNote(*job, "/history/snapshotProject: ignored"));
  EXPECT_TRUE(HasNote(*job, "/pytorch/communicationBackend: ignored"));
  EXPECT_TRUE(HasNote(*job, "1 process per node with all of the node's GPUs"));
  EXPECT_FALSE(HasNote(*job, "/priority"));
  EXPECT_FALSE(HasNote(*job, "/outputData"));
  EXPECT_FALSE(HasNote(*job, "/command"));
  std::vector<std::string> seen;
  for (const std::string& note : job->azureml.notes) {
    const std::string field = note.substr(0, note.find(':'));
    EXPECT_EQ(std::count(seen.begin(), seen.end(), field), 0) << "twice: " << field;
    seen.push_back(field);
  }
}

TEST_F(AzureMlConfigTest, SavedDefaultRunConfigurationInJsonLoads) {
  YamlDocument yaml;
  ASSERT_TRUE(YamlToJson(ReadText(Testdata("default.runconfig")), 64, &yaml).ok());
  Result<JobConfig> job = Parse(yaml.json.dump(2), "default.json");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_TRUE(job->azureml.recognised);
  EXPECT_EQ(job->azureml.recognised_by, "/target");
  EXPECT_EQ(job->process_count_per_node, 1);
}

TEST_F(AzureMlConfigTest, ARunConfigInDotAzuremlRunsTheProject) {
  Result<JobConfig> job = Parse("script: train.py\n", ".azureml/train.runconfig");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->source_directory, dir_.path());
  job = Parse("script: train.py\n", "aml_config/train.runconfig");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->source_directory, dir_.path());
  // Not for trainrun's own files, nor when the file says.
  WriteFile(dir_ / ".azureml/job.json", "");
  const std::string e = Error(R"({"script": "train.py"})", ".azureml/job.json");
  EXPECT_NE(e.find("/script:"), std::string::npos) << e;
  WriteFile(dir_ / ".azureml/src/train.py", "");
  job = Parse("script: train.py\nsourceDirectory: src\n", ".azureml/train.runconfig");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->source_directory, dir_ / ".azureml/src");
}

TEST_F(AzureMlConfigTest, TrainrunJobFilesKeepTheirDefaults) {
  for (const char* text : {R"({"script": "train.py"})", "script: train.py\nnodeCount: 1\n"}) {
    Result<JobConfig> job = Parse(text, text[0] == '{' ? "job.json" : "job.yaml");
    ASSERT_TRUE(job.ok()) << job.status().message();
    EXPECT_FALSE(job->azureml.recognised);
    EXPECT_FALSE(job->process_count_per_node);
    EXPECT_FALSE(job->gpus_per_process);
    EXPECT_TRUE(job->azureml.notes.empty());
  }
}

// The Estimator's pip_packages / conda_packages / user_managed / requirements file
// reach environment.python, where the Python environment is built from them.
TEST_F(AzureMlConfigTest, EstimatorPackagesBecomeThePythonEnvironment) {
  Result<JobConfig> job = Parse(
      "entry_script: train.py\n"
      "pip_packages: [tinypkg==1.0, --find-links /wheels]\n"
      "conda_packages: [numpy]\n"
      "user_managed: false\n"
      "pip_requirements_file_path: requirements.txt\n",
      "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->python.pip, (std::vector<std::string>{"tinypkg==1.0", "--find-links /wheels"}));
  EXPECT_EQ(job->python.conda_packages, std::vector<std::string>{"numpy"});
  EXPECT_TRUE(job->python.use_requirements_file);
  EXPECT_TRUE(HasNote(*job, "translated to environment.python.pipPackages"));
  EXPECT_NE(Error("entry_script: train.py\npip_requirements_file_path: reqs/dev.txt\n", "job.yaml")
                .find("/pip_requirements_file_path"),
            std::string::npos);
  EXPECT_NE(Error("entry_script: train.py\npip_packages: [a]\n"
                  "environment: {python: {pipPackages: [b]}}\n",
                  "job.yaml")
                .find("disagrees"),
            std::string::npos);
}

TEST_F(AzureMlConfigTest, AzureMlDefaultsYieldToWhatTheJobAsks) {
  Result<JobConfig> job =
      Parse(R"({"script": "train.py", "target": "gpu-cluster", "processCountPerNode": 4})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_TRUE(job->azureml.recognised);
  EXPECT_EQ(job->process_count_per_node, 4);
  EXPECT_FALSE(job->gpus_per_process);
  job = Parse(R"({"script": "train.py", "target": "x", "gpusPerProcess": 2})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->process_count_per_node, 1);
  EXPECT_EQ(job->gpus_per_process, 2);
}

TEST_F(AzureMlConfigTest, EstimatorParametersAreTranslated) {
  Result<JobConfig> job = Parse(R"({
    "entry_script": "train.py",
    "script_params": {"--epochs": 5, "--lr": 0.1, "--fp16": "", "--data": "{{data.mnist}}",
                      "--amp": null, "--name": "a b"},
    "node_count": 2,
    "process_count_per_node": 3,
    "distributed_training": {"type": "Mpi"},
    "data": {"mnist": {"dataLocation": {"uri": "/data/mnist"}}}
  })");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->script, "train.py");
  EXPECT_EQ(job->arguments,
            (std::vector<std::string>{"--epochs", "5", "--lr", "0.1", "--fp16", "--data",
                                      "{{data.mnist}}", "--amp", "--name", "a b"}));
  EXPECT_EQ(job->node_count, 2);
  EXPECT_EQ(job->process_count_per_node, 3);
  EXPECT_EQ(job->communicator, Communicator::kMpi);
  EXPECT_TRUE(HasNote(*job, "/entry_script: translated to script"));
  EXPECT_TRUE(HasNote(*job, "/script_params: translated to arguments"));
  EXPECT_TRUE(HasNote(*job, "/distributed_training: translated to communicator \"Mpi\""));
}

TEST_F(AzureMlConfigTest, DistributedTrainingForms) {
  Result<JobConfig> job = Parse(R"({"script": "train.py", "distributedJobConfig":
      {"type": "PyTorch", "communicationBackend": "Gloo", "processCount": 4, "nodeCount": 2}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->communicator, Communicator::kGloo);
  EXPECT_EQ(job->node_count, 2);
  EXPECT_EQ(job->process_count_per_node, 2);
  job = Parse(R"({"script": "train.py", "distributed_training": "nccl"})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->communicator, Communicator::kNccl);
  job = Parse(R"({"script": "train.py", "communicator": "IntelMpi"})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->communicator, Communicator::kMpi);
  EXPECT_NE(Error(R"({"script": "train.py", "distributed_training": "Horovod"})")
                .find("/distributed_training: \"Horovod\" is not one of Mpi, Nccl"),
            std::string::npos);
  EXPECT_NE(Error(R"({"script": "train.py", "communicator": "Gloo",
                      "distributed_training": "Mpi"})")
                .find("/distributed_training: Mpi disagrees with /communicator Gloo"),
            std::string::npos);
  EXPECT_NE(Error(R"({"script": "train.py", "pytorch": {"processCount": 3}, "nodeCount": 2})")
                .find("/pytorch/processCount: 3 processes do not divide over nodeCount 2"),
            std::string::npos);
}

TEST_F(AzureMlConfigTest, PyTorchBackendBecomesTheCommunicatorOnlyForPyTorchJobs) {
  Result<JobConfig> job = Parse(R"({"script": "train.py", "framework": "PyTorch",
                                    "pytorch": {"communicationBackend": "nccl"}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->communicator, Communicator::kNccl);
  job = Parse(R"({"script": "train.py", "framework": "Python",
                  "pytorch": {"communicationBackend": "nccl"}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->communicator, Communicator::kNone);
}

TEST_F(AzureMlConfigTest, CommandStringRunsInAShell) {
  Result<JobConfig> job = Parse(R"({"command": "python train.py --lr 0.1 && echo done"})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->command,
            (std::vector<std::string>{"/bin/sh", "-c", "python train.py --lr 0.1 && echo done"}));
  EXPECT_TRUE(HasNote(*job, "/command: translated to command [\"/bin/sh\", \"-c\""));
  job = Parse(R"({"command": ["python", "train.py"]})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->command, (std::vector<std::string>{"python", "train.py"}));
  EXPECT_NE(Error(R"({"command": "python train.py", "arguments": ["--x"]})")
                .find("/command: a command string takes no \"arguments\""),
            std::string::npos);
  // Azure ML saves command "" next to a script.
  job = Parse(R"({"script": "train.py", "command": ""})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_TRUE(job->command.empty());
}

TEST_F(AzureMlConfigTest, DataLocations) {
  Result<JobConfig> job = Parse(R"({"script": "train.py",
    "datastores": {"workspaceblobstore": "az://acct/container/"},
    "data": {
      "a": {"dataLocation": {"uri": {"path": "/data/a", "isFile": false}}, "mechanism": "Mount"},
      "b": {"dataLocation": {"dataset": null, "dataPath": {"datastoreName": "workspaceblobstore",
                                                           "relativePath": "/mnist/train"}},
            "mechanism": "Download", "createOutputDirectories": false, "options": {}}
    },
    "dataReferences": {"c": {"dataStoreName": "workspaceblobstore", "pathOnDataStore": "cifar",
                             "mode": "download", "overwrite": true, "pathOnCompute": "x"}}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  ASSERT_EQ(job->data.size(), 3u);
  EXPECT_EQ(job->data[0].uri, "/data/a");
  EXPECT_EQ(job->data[1].uri, "az://acct/container/mnist/train");
  EXPECT_EQ(job->data[1].mechanism, DataMechanism::kDownload);
  EXPECT_EQ(job->data[2].name, "c");
  EXPECT_EQ(job->data[2].uri, "az://acct/container/cifar");
  EXPECT_EQ(job->data[2].mechanism, DataMechanism::kDownload);
  EXPECT_TRUE(job->data[2].overwrite);
  EXPECT_EQ(job->data[2].path_on_compute, "x");
  EXPECT_TRUE(HasNote(*job, "/dataReferences/c: translated to data.c"));
}

TEST_F(AzureMlConfigTest, DataThatCannotBeResolvedIsRefusedNamingTheField) {
  std::string e = Error(R"({"script": "train.py", "data": {"d": {"dataLocation":
      {"dataset": {"id": "3b1e", "name": "mnist", "version": "1"}}}}})");
  EXPECT_NE(e.find("job.json: /data/d/dataLocation/dataset: a registered dataset lives in an "
                   "Azure ML workspace"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("uri: is required"), std::string::npos) << e;
  e = Error(R"({"script": "train.py", "data": {"d": {"dataLocation":
      {"dataPath": {"datastoreName": "workspaceblobstore", "relativePath": "x"}}}}})");
  EXPECT_NE(e.find("/data/d/dataLocation/dataPath/datastoreName: datastore "
                   "\"workspaceblobstore\" is an Azure ML workspace's"),
            std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "dataReferences": {"o": {"dataStoreName": "s",
      "mode": "upload"}}, "datastores": {"s": "/tmp"}})");
  EXPECT_NE(e.find("/dataReferences/o/mode: \"upload\" is not supported"), std::string::npos) << e;
  e = Error(R"({"script": "train.py", "outputData": {"out": {"mechanism": "upload"}}})");
  EXPECT_NE(e.find("/outputData: not supported: trainrun uploads ./outputs"), std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "framework": "PySpark"})");
  EXPECT_NE(e.find("/framework: \"PySpark\" jobs run through spark-submit"), std::string::npos)
      << e;
}

TEST_F(AzureMlConfigTest, UseGpu) {
  Result<JobConfig> job = Parse(R"({"script": "train.py", "use_gpu": false})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->azureml.use_gpu, false);
  EXPECT_EQ(job->environment_variables,
            (std::vector<std::pair<std::string, std::string>>{{"CUDA_VISIBLE_DEVICES", ""}}));
  job = Parse(R"({"script": "train.py", "useGpu": true})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->azureml.use_gpu, true);
  EXPECT_TRUE(job->environment_variables.empty());
  EXPECT_NE(
      Error(R"({"script": "train.py", "useGpu": "yes"})").find("/useGpu: must be true or false"),
      std::string::npos);
}

TEST_F(AzureMlConfigTest, ShmSize) {
  EXPECT_EQ(ParseDockerSize("2g"), uint64_t{2} << 30);
  EXPECT_EQ(ParseDockerSize("512M"), uint64_t{512} << 20);
  EXPECT_EQ(ParseDockerSize("1024"), 1024u);
  EXPECT_FALSE(ParseDockerSize("2 gigs"));
  EXPECT_FALSE(ParseDockerSize("0"));
  Result<JobConfig> job = Parse(R"({"script": "train.py", "shm_size": "1g",
                                    "environment": {"docker": {"shmSize": "4g"}}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->azureml.shm_size_bytes, uint64_t{4} << 30);
  EXPECT_TRUE(HasNote(*job, "/shm_size: ignored: /environment/docker/shmSize 4g wins"));
  EXPECT_NE(Error(R"({"script": "train.py", "docker": {"shmSize": "lots"}})")
                .find("/docker/shmSize: \"lots\" is not a size"),
            std::string::npos);
  EXPECT_NE(Error(R"({"script": "train.py", "docker": {"shmSise": "1g"}})")
                .find("/docker/shmSise: unknown field; did you mean \"shmSize\"?"),
            std::string::npos);
  // A tmpfs of known size stands for /dev/shm.
  EXPECT_EQ(CheckShmSize(1, "/docker/shmSize", dir_.path()), "");
  std::string warning =
      CheckShmSize(uint64_t{1} << 60, "/docker/shmSize \"1048576g\"", dir_.path());
  EXPECT_NE(warning.find("/docker/shmSize \"1048576g\" asks for"), std::string::npos) << warning;
  EXPECT_NE(warning.find("--shm-size=1073741824g"), std::string::npos) << warning;
  std::string error;
  EXPECT_EQ(CheckShmSize(1, "x", dir_ / "missing", &error), "");
  EXPECT_NE(error.find("missing"), std::string::npos);
}

TEST_F(AzureMlConfigTest, EnvironmentVariablesAtTheTopMerge) {
  Result<JobConfig> job = Parse(R"({"script": "train.py", "environment_variables": {"A": "1"},
                                    "environment": {"environmentVariables": {"B": "2"}}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->environment_variables.size(), 2u);
  EXPECT_NE(Error(R"({"script": "train.py", "environmentVariables": {"A": "1"},
                      "environment": {"environmentVariables": {"A": "2"}}})")
                .find("/environmentVariables/A: is also in /environment/environmentVariables"),
            std::string::npos);
}

TEST_F(AzureMlConfigTest, OtherPartsKeysAreAcceptedHere) {
  Result<JobConfig> job = Parse(R"({"script": "train.py",
    "environment": {"python": {"userManagedDependencies": false, "condaDependencies":
                               {"dependencies": ["python=3.10", {"pip": ["torch"]}]},
                               "condaDependenciesFile": null, "baseCondaEnvironment": null}},
    "tensorflow": {"workerCount": 2, "parameterServerCount": 1},
    "pip_packages": ["numpy"]})");
  ASSERT_TRUE(job.ok()) << job.status().message();
}

TEST_F(AzureMlConfigTest, UnknownFieldsThatAreNotAzureMlsStayErrors) {
  std::string e = Error(R"({"script": "train.py", "framwork": "Python"})");
  EXPECT_NE(e.find("/framwork: unknown field; did you mean \"framework\"?"), std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "history": {"snapshotProjects": true}})");
  EXPECT_NE(e.find("/history/snapshotProjects: unknown field; did you mean \"snapshotProject\"?"),
            std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "pytorch": {"backend": "nccl"}})");
  EXPECT_NE(e.find("/pytorch/backend: unknown field"), std::string::npos) << e;
}

TEST_F(AzureMlConfigTest, TranslatedFieldsAreNamedAsWritten) {
  std::string e = Error(R"({"entry_script": "trian.py"})");
  EXPECT_NE(e.find("/entry_script: \"trian.py\" is not a file in sourceDirectory"),
            std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "script_params": {"--data": "{{data.x}}"}})");
  EXPECT_NE(e.find("/script_params/1: {{data.x}} names a data reference, but the job has none"),
            std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "script_params": {"--x": [1]}})");
  EXPECT_NE(e.find("/script_params/--x: must be a string, a number, or empty"), std::string::npos)
      << e;
}

TEST_F(AzureMlConfigTest, YamlErrorsNameTheFieldAndTheLine) {
  std::string e =
      Error("script: train.py\nnodeCount: 0\nmpi:\n  processCountPerNode: two\n", "job.yml");
  EXPECT_NE(e.find("job.yml:2: /nodeCount: must be an integer from 1 to 65536, got 0"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("job.yml:4: /mpi/processCountPerNode: must be an integer"), std::string::npos)
      << e;
  e = Error("script: train.py\nenviroment: {}\n", "job.runconfig");
  EXPECT_NE(e.find("job.runconfig:2: /enviroment: unknown field; did you mean \"environment\"?"),
            std::string::npos)
      << e;
  e = Error("script: [unclosed\n", "job.yaml");
  EXPECT_NE(e.find("job.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = Error("- a\n- b\n", "job.yaml");
  EXPECT_NE(e.find("must be a YAML mapping"), std::string::npos) << e;
}

TEST_F(AzureMlConfigTest, YamlScalarsFollowTheCoreSchema) {
  YamlDocument doc;
  ASSERT_TRUE(YamlToJson("a: 1\nb: '1'\nc: true\nd: ~\ne: 0.5\nf: yes\ng: 0x10\nh:\n"
                         "i: 18446744073709551615\nj: \"null\"\n",
                         64, &doc)
                  .ok());
  EXPECT_EQ(doc.json.dump(),
            R"({"a":1,"b":"1","c":true,"d":null,"e":0.5,"f":"yes","g":16,"h":null,)"
            R"("i":18446744073709551615,"j":"null"})");
  EXPECT_EQ(doc.lines.at("/c"), 3);
}

TEST_F(AzureMlConfigTest, YamlLimits) {
  std::string deep = "a: ";
  for (int i = 0; i < 70; ++i) deep += "[";
  for (int i = 0; i < 70; ++i) deep += "]";
  YamlDocument doc;
  Status s = YamlToJson(deep, 64, &doc);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nested more than 64 levels"), std::string::npos) << s.message();
  // Aliases that would expand to 10^9 values.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += fmt::format("{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n", c, c,
                        char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1),
                        char(c - 1), char(c - 1), char(c - 1), char(c - 1), char(c - 1));
  }
  YamlDocument bombed;
  s = YamlToJson(bomb, 64, &bombed);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("expands to more than"), std::string::npos) << s.message();
}

TEST_F(AzureMlConfigTest, LooksLikeYaml) {
  EXPECT_TRUE(LooksLikeYaml("a.runconfig", "{}"));
  EXPECT_TRUE(LooksLikeYaml("a.yml", ""));
  EXPECT_FALSE(LooksLikeYaml("a.json", "script: x"));
  EXPECT_TRUE(LooksLikeYaml("job", "# comment\nscript: x"));
  EXPECT_FALSE(LooksLikeYaml("job", "  {\"script\": 1}"));
}

// The README's table names every field of the schema, with its treatment.
TEST(AzureMlFieldsTest, ReadmeTableHasEveryField) {
  const std::string readme = ReadText(std::string(TRAINRUN_SOURCE_DIR) + "/README.md");
  for (const AzureMlField& field : AzureMlFields()) {
    std::string name = std::string(field.pointer).substr(1);
    std::replace(name.begin(), name.end(), '/', '.');
    for (size_t star = name.find('*'); star != std::string::npos; star = name.find('*')) {
      name.replace(star, 1, "<name>");
    }
    EXPECT_NE(readme.find(fmt::format("| `{}` |", name)), std::string::npos)
        << name << " is missing from README's Run configurations table";
  }
}

}  // namespace
}  // namespace trainrun
