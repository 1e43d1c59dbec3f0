#include "runtime/run/job_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;
using testing::WriteFile;

class JobConfigTest : public ::testing::Test {
 protected:
  JobConfigTest() { WriteFile(dir_ / "src/train.py", "print('hi')\n"); }
  Result<JobConfig> Parse(const std::string& text) { return ParseJobText(text, dir_ / "job.json"); }
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
            std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "sourceDirectory": "src",
                "data": {"d": {"dataLocation": {"uri": "/x"}, "mechanismm": "mount"}}})");
  EXPECT_NE(e.find("/data/d/mechanismm: unknown field; did you mean \"mechanism\"?"),
            std::string::npos)
      << e;
  e = Error(R"({"script": "train.py", "sourceDirectory": "src", "zzz": 1})");
  EXPECT_NE(e.find("/zzz: unknown field; known fields here are script, command"), std::string::npos)
      << e;
}

// The top level knows the names each section's parser declares: a misspelling of
// any of them is refused with the name meant.
TEST_F(JobConfigTest, EachSectionsTopLevelNamesAreKnownForDidYouMean) {
  for (const std::string name :
       {"sourceDirectry", "experimentNam", "rendezvus", "gpusPerProces", "maxRunDurationSecond",
        "histroy", "preflght", "tensorflw", "maxRestart", "restart", "checkpoint", "resumeFrm",
        "preemptionNoticeFil", "preemptionNoticeUr"}) {
    std::string e =
        Error(R"({"script": "train.py", "sourceDirectory": "src", ")" + name + R"(": 1})");
    EXPECT_NE(e.find("job.json: /" + name + ": unknown field; did you mean \""), std::string::npos)
        << e;
  }
  EXPECT_NE(Error(R"({"script": "train.py", "sourceDirectory": "src", "resumeFrm": "r"})")
                .find("did you mean \"resumeFrom\"?"),
            std::string::npos);
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
      {R"({"script": "train.py", "sourceDirectory": "src", "runId": "../etc"})",
       "/runId: \"../etc\""},
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
      {R"({"script": "train.py", "sourceDirectory": "src", "maxRestarts": -1})",
       "/maxRestarts: must be an integer from 0 to 1000, got -1"},
      {R"({"script": "train.py", "sourceDirectory": "src", "restarts": {"retryExitCodes": [1, 0]}})",
       "/restarts/retryExitCodes/1: must be an exit code from 1 to 255, got 0"},
      {R"({"script": "train.py", "sourceDirectory": "src", "restarts": {"backoffSeconds": 5, "backoffMaxSeconds": 2}})",
       "/restarts/backoffMaxSeconds: 2 is less than backoffSeconds 5"},
      {R"({"script": "train.py", "sourceDirectory": "src", "restarts": {"backofSeconds": 5}})",
       "/restarts/backofSeconds: unknown field; did you mean \"backoffSeconds\"?"},
  };
  for (const Case& c : cases) {
    std::string e = Error(c.json);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "for " << c.json << "\ngot: " << e;
    EXPECT_EQ(e.rfind(dir_ / "job.json", 0), 0u) << "the message starts with the file: " << e;
  }
}

TEST_F(JobConfigTest, RestartsDefaultToNoneAndAreRead) {
  Result<JobConfig> none = Parse(R"({"script": "train.py", "sourceDirectory": "src"})");
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_EQ(none->restarts.max_restarts, 0);
  EXPECT_FALSE(none->restarts.retry_exit_codes);
  EXPECT_EQ(none->restarts.backoff_seconds, kDefaultRestartBackoffSeconds);
  EXPECT_FALSE(none->restarts.rejoin_timeout_seconds);
  Result<JobConfig> job = Parse(R"({"script": "train.py", "sourceDirectory": "src",
      "maxRestarts": 3, "restarts": {"retryExitCodes": [1, 137], "backoffSeconds": 0.25,
      "backoffMaxSeconds": 4, "rejoinTimeoutSeconds": 90}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->restarts.max_restarts, 3);
  EXPECT_EQ(*job->restarts.retry_exit_codes, (std::vector<int>{1, 137}));
  EXPECT_EQ(job->restarts.backoff_seconds, 0.25);
  EXPECT_EQ(job->restarts.backoff_max_seconds, 4);
  EXPECT_EQ(job->restarts.rejoin_timeout_seconds, 90);
  // A first wait past the default maximum raises the maximum with it.
  Result<JobConfig> long_wait = Parse(R"({"script": "train.py", "sourceDirectory": "src",
      "restarts": {"backoffSeconds": 600}})");
  ASSERT_TRUE(long_wait.ok()) << long_wait.status().message();
  EXPECT_EQ(long_wait->restarts.backoff_max_seconds, 600);
}

TEST_F(JobConfigTest, SeveralErrorsAreReportedTogether) {
  std::string e = Error(
      R"({"script": "train.py", "sourceDirectory": "src", "nodeCount": 0, "binding": "tight"})");
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

// The limits on what a job file may hold (README "Limits").
class JobConfigLimitsTest : public JobConfigTest {
 protected:
  // ParseJobFile on another thread: fails the test instead of hanging when it blocks.
  Result<JobConfig> ParseFileWithin(const std::string& path, std::chrono::seconds limit) {
    auto parsed = std::async(std::launch::async, [path] { return ParseJobFile(path); });
    if (parsed.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "ParseJobFile(" << path << ") still running after " << limit.count() << " s";
      // A reader blocked on a FIFO returns once a writer comes and goes.
      int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) close(fd);
    }
    return parsed.get();
  }
  std::string Nested(int levels) {
    return R"({"script": "train.py", "sourceDirectory": "src", "arguments": )" +
           std::string(levels, '[') + std::string(levels, ']') + "}";
  }
};

TEST_F(JobConfigLimitsTest, NestingPastTheLimitIsRefusedWithoutRecursing) {
  // 60,000 levels would overflow the stack if a tree were built (or printed).
  std::string e = Error(Nested(60000));
  EXPECT_NE(e.find("job.json:1:126: arrays and objects are nested more than 64 levels deep"),
            std::string::npos)
      << e.substr(0, 300);
  WriteFile(dir_ / "deep.json", Nested(60000));
  Result<JobConfig> job = ParseJobFile(dir_ / "deep.json");
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), StatusCode::kInvalidJob);
  // At the limit the nesting is fine; "arguments" only holds no scalars.
  EXPECT_EQ(Error(Nested(kMaxJobNestingDepth - 1)).find("nested"), std::string::npos);
  EXPECT_NE(Error(Nested(kMaxJobNestingDepth - 1)).find("/arguments/0: must be a string"),
            std::string::npos);
  EXPECT_NE(Error(Nested(kMaxJobNestingDepth)).find("nested more than 64"), std::string::npos);
}

TEST_F(JobConfigLimitsTest, OnlyRegularFilesUpToTheSizeLimitAreRead) {
  const std::string big = dir_ / "big.json";
  WriteFile(big, R"({"script": "train.py", "sourceDirectory": "src"})" +
                     std::string(kMaxJobFileBytes, ' '));
  Result<JobConfig> job = ParseFileWithin(big, std::chrono::seconds(10));
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), StatusCode::kInvalidJob);
  EXPECT_NE(job.status().message().find("big.json: the job file has 4194352 bytes; it may have "
                                        "at most 4194304"),
            std::string::npos)
      << job.status().message();
  EXPECT_NE(Error(std::string(kMaxJobFileBytes + 1, ' ')).find("at most 4194304"),
            std::string::npos);

  const std::string fifo = dir_ / "fifo.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  job = ParseFileWithin(fifo, std::chrono::seconds(10));
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), StatusCode::kInvalidJob);
  EXPECT_NE(job.status().message().find("must be a regular file, this is a FIFO"),
            std::string::npos)
      << job.status().message();

  job = ParseFileWithin("/dev/zero", std::chrono::seconds(10));
  ASSERT_FALSE(job.ok());
  EXPECT_NE(job.status().message().find("/dev/zero: the job file must be a regular file, this "
                                        "is a device"),
            std::string::npos)
      << job.status().message();
  job = ParseFileWithin(dir_ / "src", std::chrono::seconds(10));
  ASSERT_FALSE(job.ok());
  EXPECT_NE(job.status().message().find("this is a directory"), std::string::npos);

  job = ParseJobFile(dir_ / (std::string(300, 'j') + ".json"));
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(job.status().message().find("job file: path component \"jjj"), std::string::npos)
      << job.status().message();
}

TEST_F(JobConfigLimitsTest, PathFieldsPastPathMaxOrNameMaxNameTheField) {
  const std::string name(256, 'n');  // one component past NAME_MAX
  std::string path;                  // 4096 bytes, components of 127
  while (path.size() < 4096) path += std::string(127, 'p') + "/";
  struct Case {
    nlohmann::json job;
    std::string field;
  };
  const nlohmann::json base = {{"script", "train.py"}, {"sourceDirectory", "src"}};
  auto with = [&](nlohmann::json extra) {
    nlohmann::json job = base;
    job.update(extra, /*merge_objects=*/true);
    return job;
  };
  auto data = [&](nlohmann::json ref) {
    ref["dataLocation"] = ref.value("dataLocation", nlohmann::json{{"uri", "/d"}});
    return nlohmann::json{{"data", {{"d", ref}}}};
  };
  const std::vector<Case> cases = {
      {with({{"script", name + ".py"}}), "/script: path component \"nnn"},
      {with({{"sourceDirectory", "src/" + name}}), "/sourceDirectory: path component \"nnn"},
      {with({{"sourceDirectory", path}}),
       "/sourceDirectory: is 4096 bytes long; a path may "
       "have at most 4095"},
      {nlohmann::json{{"command", {"/bin/" + name}}, {"sourceDirectory", "src"}},
       "/command/0: path component"},
      {with(data({{"pathOnCompute", std::string(300, 'c')}})),
       "/data/d/pathOnCompute: path component \"ccc"},
      {with(data({{"dataLocation", {{"uri", "file:///" + name}}}})),
       "/data/d/dataLocation/uri: path component"},
      {with(data({{"dataLocation", {{"uri", "az://a/c/" + path}}}})),
       "/data/d/dataLocation/uri: is 4105 bytes long"},
      {with({{"data", {{name, {{"dataLocation", {{"uri", "/d"}}}}}}}}),
       "/data/" + name + ": path component"},
      {with({{"environment", {{"python", {{"interpreterPath", "/usr/" + name}}}}}}),
       "/environment/python/interpreterPath: path component"},
      {with({{"history", {{"directoriesToWatch", {"logs", name}}}}}),
       "/history/directoriesToWatch/1: path component"},
      {with({{"history", {{"uri", "file:///" + path}}}}), "/history/uri: is 4104 bytes long"},
  };
  for (const Case& c : cases) {
    std::string e = Error(c.job.dump());
    EXPECT_NE(e.find(c.field), std::string::npos) << "want " << c.field << "\ngot: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << "one error only: " << e;
  }
  // 255 is still a valid file name.
  WriteFile(dir_ / ("src/" + std::string(252, 's') + ".py"), "");
  EXPECT_EQ(Error(with({{"script", std::string(252, 's') + ".py"}}).dump()), "");
}

TEST_F(JobConfigLimitsTest, NumbersAreRangeCheckedBeforeConversion) {
  struct Case {
    const char* value;
    const char* expected;
  } cases[] = {
      {"18446744073709551615", "got 18446744073709551615"},
      {"9223372036854775808", "got 9223372036854775808"},
      {"-9223372036854775808", "got -9223372036854775808"},
      {"4097", "got 4097"},
      {"1e300", "got 1e+300"},
      {"-1e300", "got -1e+300"},
      {"2.5", "got 2.5"},
      {"4096.0000001", "got 4096.0000001"},
  };
  for (const Case& c : cases) {
    std::string e = Error(std::string(R"({"script": "train.py", "sourceDirectory": "src", )"
                                      R"("processCountPerNode": )") +
                          c.value + "}");
    EXPECT_NE(e.find("/processCountPerNode: must be an integer from 1 to 4096, got "),
              std::string::npos)
        << c.value << ": " << e;
    EXPECT_NE(e.find(c.expected), std::string::npos) << c.value << ": " << e;
  }
  Result<JobConfig> job = Parse(R"({"script": "train.py", "sourceDirectory": "src",
      "processCountPerNode": 4096.0, "nodeCount": 65536, "maxRunDurationSeconds": 2147483647})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->process_count_per_node, 4096);
  EXPECT_EQ(job->node_count, 65536);
  EXPECT_EQ(job->max_run_duration_seconds, 2147483647);
  // A number past what a double holds is a JSON error with its place, not an exception.
  std::string e = Error(R"({"script": "train.py", "nodeCount": 1e400})");
  EXPECT_NE(e.find("job.json:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("number overflow"), std::string::npos) << e;
}

TEST_F(JobConfigLimitsTest, RunIdsAndExperimentNamesAreCheckedForLengthAndCharacters) {
  EXPECT_TRUE(IsValidRunName(std::string(255, 'r')));
  EXPECT_FALSE(IsValidRunName(std::string(256, 'r')));
  EXPECT_FALSE(IsValidRunName("a/b"));
  EXPECT_FALSE(IsValidRunName(".hidden"));
  std::string e = Error(nlohmann::json{
      {"script", "train.py"}, {"sourceDirectory", "src"}, {"runId", std::string(256, 'r')}}
                            .dump());
  EXPECT_NE(e.find("/runId: \"rrr"), std::string::npos) << e;
  e = Error(R"({"script": "train.py", "sourceDirectory": "src", "experimentName": "a b"})");
  EXPECT_NE(e.find("/experimentName: \"a b\" must be 1-255"), std::string::npos) << e;
}

// preflight: off unless given; true is every default; an object sets the parts.
TEST_F(JobConfigTest, PreflightIsOffTrueOrAnObjectWithItsFieldsNamed) {
  const std::string head = R"({"script": "train.py", "sourceDirectory": "src")";
  Result<JobConfig> off = Parse(head + "}");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->preflight.enabled);
  Result<JobConfig> on = Parse(head + R"(, "preflight": true})");
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on->preflight.enabled);
  EXPECT_TRUE(on->preflight.health);
  EXPECT_TRUE(on->preflight.nccl.enabled);
  EXPECT_EQ(on->preflight.nccl.max_bytes, kDefaultPreflightMaxBytes);
  EXPECT_EQ(on->preflight.nccl.timeout_seconds, kDefaultPreflightNcclTimeoutSeconds);
  EXPECT_EQ(on->preflight.on_no_gpu, PreflightNoGpu::kFail);

  Result<JobConfig> set = Parse(head + R"(, "preflight": {"health": {"expectedGpuCount": 8},
      "nccl": {"minBusBandwidthGBps": 40.5, "timeoutSeconds": 60, "minBytes": "1M",
               "maxBytes": "1G", "iterations": 5, "warmupIterations": 1,
               "operations": ["all_reduce"]}, "onNoGpu": "skip"}})");
  ASSERT_TRUE(set.ok()) << set.status().message();
  EXPECT_EQ(set->preflight.health_thresholds_json, R"({"expectedGpuCount":8})");
  EXPECT_EQ(set->preflight.nccl.min_bus_bandwidth_gbps, 40.5);
  EXPECT_EQ(set->preflight.nccl.min_bytes, 1u << 20);
  EXPECT_EQ(set->preflight.nccl.max_bytes, 1u << 30);
  EXPECT_EQ(set->preflight.nccl.operations, std::vector<std::string>{"all_reduce"});
  EXPECT_EQ(set->preflight.on_no_gpu, PreflightNoGpu::kSkip);
  Result<JobConfig> nccl_off = Parse(head + R"(, "preflight": {"nccl": false}})");
  ASSERT_TRUE(nccl_off.ok());
  EXPECT_TRUE(nccl_off->preflight.enabled);
  EXPECT_FALSE(nccl_off->preflight.nccl.enabled);

  std::string e = Error(head + R"(, "preflight": {"ncl": {}, "onNoGpu": "maybe",
      "nccl": {"minBusBandwith": 1, "maxBytes": "1T", "operations": ["all_to_all"],
               "timeoutSeconds": 0}}})");
  EXPECT_NE(e.find("/preflight/ncl: unknown field; did you mean \"nccl\"?"), std::string::npos)
      << e;
  EXPECT_NE(e.find("/preflight/onNoGpu: \"maybe\" is not one of fail, skip"), std::string::npos)
      << e;
  EXPECT_NE(e.find("/preflight/nccl/minBusBandwith: unknown field; did you mean "
                   "\"minBusBandwidthGBps\"?"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("/preflight/nccl/maxBytes: must be a size in bytes"), std::string::npos) << e;
  EXPECT_NE(e.find("/preflight/nccl/operations/0: \"all_to_all\" is not one of"), std::string::npos)
      << e;
  EXPECT_NE(e.find("/preflight/nccl/timeoutSeconds: must be an integer from 1"), std::string::npos)
      << e;
  EXPECT_NE(
      Error(head + R"(, "preflight": "yes"})").find("/preflight: must be true, false or an object"),
      std::string::npos);
}

}  // namespace
}  // namespace trainrun
