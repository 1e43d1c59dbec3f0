#include "runtime/run/job_config.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;
using testing::WriteFile;

class JobConfigTest : public ::testing::Test {
 protected:
  JobConfigTest() { WriteFile(dir_ / "src/train.py", "print('hi')\n"); }
  Result<JobConfig> Parse(const std::string& text) {
    return ParseJobText(text, dir_ / "job.json");
  }
  // The error message, or "" when parsing succeeded.
  std::string Error(const std::string& text) {
    Result<JobConfig> job = Parse(text);
    if (job.ok()) return "";
    EXPECT_EQ(job.status().code(), StatusCode::kInvalidJob);
    return job.status().message();
  }
  TempDir dir_;
};

TEST_F(JobConfigTest, FullExampleParses) {
  Result<JobConfig> job = Parse(R"({
    "script": "train.py",
    "arguments": ["--epochs", 3, "--lr", 0.5, "--data", "{{data.mnist}}", true],
    "sourceDirectory": "src",
    "experimentName": "mnist",
    "runId": "run-1",
    "communicator": "gloo",
    "mpi": {"processCountPerNode": 2},
    "maxRunDurationSeconds": 600,
    "environment": {"environmentVariables": {"A": "1", "B": 2},
                    "python": {"interpreterPath": "/usr/bin/python3"}},
    "data": {"mnist": {"dataLocation": {"uri": "/data/mnist"}, "mechanism": "Download",
                       "pathOnCompute": "data/mnist", "environmentVariableName": "MNIST",
                       "overwrite": true}},
    "history": {"outputCollection": false, "directoriesToWatch": ["logs", "metrics"],
                "uri": "file:///tmp/h"}
  })");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->script, "train.py");
  EXPECT_EQ(job->arguments, (std::vector<std::string>{"--epochs", "3", "--lr", "0.5", "--data",
                                                      "{{data.mnist}}", "true"}));
  EXPECT_EQ(job->source_directory, dir_ / "src");
  EXPECT_EQ(job->experiment_name, "mnist");
  EXPECT_EQ(job->run_id, "run-1");
  EXPECT_EQ(job->communicator, Communicator::kGloo);
  EXPECT_EQ(job->process_count_per_node, 2);
  EXPECT_EQ(job->max_run_duration_seconds, 600);
  ASSERT_EQ(job->environment_variables.size(), 2u);
  EXPECT_EQ(job->environment_variables[1], (std::pair<std::string, std::string>{"B", "2"}));
  EXPECT_EQ(job->interpreter_path, "/usr/bin/python3");
  ASSERT_EQ(job->data.size(), 1u);
  EXPECT_EQ(job->data[0].name, "mnist");
  EXPECT_EQ(job->data[0].uri, "/data/mnist");
  EXPECT_EQ(job->data[0].mechanism, DataMechanism::kDownload);
  EXPECT_EQ(job->data[0].environment_variable_name, "MNIST");
  EXPECT_TRUE(job->data[0].overwrite);
  EXPECT_FALSE(job->history.output_collection);
  EXPECT_EQ(job->history.directories_to_watch.size(), 2u);
  EXPECT_EQ(job->history.uri, "file:///tmp/h");
}

TEST_F(JobConfigTest, DefaultsAndCaseInsensitiveNames) {
  Result<JobConfig> job = Parse(R"({"Command": ["echo", "hi"], "SOURCEDIRECTORY": "src"})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->command, (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(job->experiment_name, "default");
  EXPECT_TRUE(job->run_id.empty());
  EXPECT_EQ(job->node_count, 1);
  EXPECT_FALSE(job->process_count_per_node);
  EXPECT_EQ(job->communicator, Communicator::kNone);
  EXPECT_TRUE(job->history.output_collection);
}

TEST_F(JobConfigTest, UnknownFieldSuggestsTheNearestName) {
  std::string e = Error(R"({"script": "train.py", "sourceDirectory": "src", "enviroment": {}})");
  EXPECT_NE(e.find("job.json: /enviroment: unknown field; did you mean \"environment\"?"),
            std::string::npos) << e;
  e = Error(R"({"script": "train.py", "sourceDirectory": "src",
                "data": {"d": {"dataLocation": {"uri": "/x"}, "mechanismm": "mount"}}})");
  EXPECT_NE(e.find("/data/d/mechanismm: unknown field; did you mean \"mechanism\"?"),
            std::string::npos) << e;
  e = Error(R"({"script": "train.py", "sourceDirectory": "src", "zzz": 1})");
  EXPECT_NE(e.find("/zzz: unknown field; known fields here are script, command"),
            std::string::npos) << e;
}

TEST_F(JobConfigTest, BadValuesNameTheFieldAndTheFile) {
  struct Case {
    const char* json;
    const char* expected;
  } cases[] = {
      {R"({"script": "train.py", "sourceDirectory": "src", "data": {"mnist": {"dataLocation": {"uri": "/d"}, "mechanism": "mnt"}}})",
       "/data/mnist/mechanism: \"mnt\" is not one of mount, download, direct"},
      {R"({"script": "train.py", "sourceDirectory": "src", "processCountPerNode": 0})",
       "/processCountPerNode: must be an integer from 1 to 4096, got 0"},
      {R"({"script": "train.py", "sourceDirectory": "src", "processCountPerNode": "two"})",
       "/processCountPerNode: must be an integer from 1 to 4096, got \"two\""},
      {R"({"script": "train.py", "sourceDirectory": "src", "communicator": "Horovod"})",
       "/communicator: \"Horovod\" is not one of None, Mpi, Nccl, Gloo, TensorFlow"},
      {R"({"script": "trian.py", "sourceDirectory": "src"})",
       "/script: \"trian.py\" is not a file in sourceDirectory"},
      {R"({"script": "train.py", "sourceDirectory": "nope"})", "/sourceDirectory: \""},
      {R"({"sourceDirectory": "src"})", "one of \"script\""},
      {R"({"script": "train.py", "command": ["x"], "sourceDirectory": "src"})",
       "give \"script\" or \"command\", not both"},
      {R"({"command": [], "sourceDirectory": "src"})", "/command: must not be empty"},
      {R"({"script": "train.py", "sourceDirectory": "src", "runId": "../etc"})", "/runId: \"../etc\""},
      {R"({"script": "train.py", "sourceDirectory": "src", "arguments": ["{{data.mnst}}"], "data": {"mnist": {"dataLocation": {"uri": "/d"}}}})",
       "/arguments/0: {{data.mnst}} names no data reference; did you mean {{data.mnist}}?"},
      {R"({"script": "train.py", "sourceDirectory": "src", "arguments": ["{{output}}"]})",
       "/arguments/0: unknown placeholder {{output}}"},
      {R"({"script": "train.py", "sourceDirectory": "src", "environment": {"environmentVariables": {"1X": "a"}}})",
       "/environment/environmentVariables/1X: not a valid environment variable name"},
      {R"({"script": "train.py", "sourceDirectory": "src", "data": {"d": {"mechanism": "mount"}}})",
       "/data/d/dataLocation: is required"},
      {R"({"script": "train.py", "sourceDirectory": "src", "mpi": {"processCountPerNode": 2}, "processCountPerNode": 3})",
       "/mpi/processCountPerNode: 2 disagrees with /processCountPerNode 3"},
      {R"({"script": "train.py", "sourceDirectory": "src", "history": {"directoriesToWatch": ["/etc"]}})",
       "/history/directoriesToWatch/0: \"/etc\" must be a path inside the working directory"},
      {R"({"script": "train.py", "sourceDirectory": "src", "maxRunDurationSeconds": 1.5})",
       "/maxRunDurationSeconds: must be an integer"},
  };
  for (const Case& c : cases) {
    std::string e = Error(c.json);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "for " << c.json << "\ngot: " << e;
    EXPECT_EQ(e.rfind(dir_ / "job.json", 0), 0u) << "the message starts with the file: " << e;
  }
}

TEST_F(JobConfigTest, SeveralErrorsAreReportedTogether) {
  std::string e = Error(R"({"script": "train.py", "sourceDirectory": "src", "nodeCount": 0, "binding": "tight"})");
  EXPECT_NE(e.find("/nodeCount"), std::string::npos);
  EXPECT_NE(e.find("/binding: \"tight\" is not one of auto, none"), std::string::npos);
  EXPECT_NE(e.find('\n'), std::string::npos);
}

TEST_F(JobConfigTest, SyntaxErrorsGiveLineAndColumn) {
  std::string e = Error("{\n  \"script\": \"train.py\",\n  \"arguments\": [1, 2,]\n}");
  EXPECT_NE(e.find("job.json:3:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;
  EXPECT_NE(Error("[1]").find("must be a JSON object"), std::string::npos);
}

TEST_F(JobConfigTest, MissingFileNamesIt) {
  Result<JobConfig> job = ParseJobFile(dir_ / "absent.json");
  ASSERT_FALSE(job.ok());
  EXPECT_NE(job.status().message().find("absent.json"), std::string::npos);
}

TEST_F(JobConfigTest, LaterIssuesFieldsAreAccepted) {
  Result<JobConfig> job = Parse(R"({"script": "train.py", "sourceDirectory": "src", "nodeCount": 4,
      "communicator": "Mpi", "data": {"d": {"dataLocation": {"uri": "az://acct/c/p"}}}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->node_count, 4);
  EXPECT_EQ(job->communicator, Communicator::kMpi);
}

}  // namespace
}  // namespace trainrun
