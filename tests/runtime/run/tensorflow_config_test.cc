// The `tensorflow` section of a job file and the placement of a ParameterServer
// job's roles over the nodes.
#include "runtime/run/tensorflow_config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/run/job_config.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;
using testing::WriteFile;

class TensorFlowConfigTest : public ::testing::Test {
 protected:
  TensorFlowConfigTest() { WriteFile(dir_ / "train.py", "print('hi')\n"); }
  Result<JobConfig> Parse(const std::string& fields) {
    return ParseJobText(R"({"script": "train.py", )" + fields + "}", dir_ / "job.json");
  }
  TempDir dir_;
};

// "chief,ps0,worker1": the tasks of one node, in local rank order.
std::string Tasks(const TfRoles& roles, int nodes, int node) {
  std::string out;
  for (const TfTask& t : TfTasksOnNode(roles, nodes, node)) {
    if (!out.empty()) out += ",";
    out += t.type == "chief" ? "chief" : t.type + std::to_string(t.index);
  }
  return out;
}

TEST_F(TensorFlowConfigTest, ParameterServerAndTheTensorflowSectionParse) {
  Result<JobConfig> job = Parse(
      R"("communicator": "ParameterServer", "nodeCount": 2,
         "tensorflow": {"workerCount": 3, "PARAMETERSERVERCOUNT": 2, "chief": true})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->communicator, Communicator::kParameterServer);
  EXPECT_EQ(CommunicatorName(job->communicator), "ParameterServer");
  EXPECT_EQ(job->tensorflow.worker_count, 3);
  EXPECT_EQ(job->tensorflow.parameter_server_count, 2);
  EXPECT_TRUE(job->tensorflow.chief);
  EXPECT_FALSE(job->tensorflow.roles) << "resolved once the node count is known";
}

TEST_F(TensorFlowConfigTest, BadFieldsAreNamed) {
  Result<JobConfig> job = Parse(
      R"("communicator": "ParameterServer",
         "tensorflow": {"workerCnt": 2, "parameterServerCount": -1, "chief": "yes"})");
  ASSERT_FALSE(job.ok());
  const std::string message = job.status().message();
  EXPECT_NE(message.find("/tensorflow/workerCnt: unknown field; did you mean \"workerCount\"?"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("/tensorflow/parameterServerCount: must be an integer from 0 to"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("/tensorflow/chief: must be true or false"), std::string::npos) << message;
  EXPECT_NE(Parse(R"("tensorflow": {"workerCount": 0})")
                .status()
                .message()
                .find("/tensorflow/workerCount: must be an integer from 1"),
            std::string::npos);
  EXPECT_NE(Parse(R"("tensorflow": [1])")
                .status()
                .message()
                .find("/tensorflow: must be an object, got an array"),
            std::string::npos);
}

TEST_F(TensorFlowConfigTest, TasksAreDealtRoundRobinChiefThenServersThenWorkers) {
  const TfRoles azure{.chief = 0, .ps = 1, .workers = 2};  // Azure ML's PS example
  EXPECT_EQ(Tasks(azure, 2, 0), "ps0,worker1");
  EXPECT_EQ(Tasks(azure, 2, 1), "worker0");
  EXPECT_EQ(Tasks(azure, 1, 0), "ps0,worker0,worker1");
  const TfRoles chief{.chief = 1, .ps = 2, .workers = 5};
  EXPECT_EQ(Tasks(chief, 4, 0), "chief,worker1");
  EXPECT_EQ(Tasks(chief, 4, 1), "ps0,worker2");
  EXPECT_EQ(Tasks(chief, 4, 2), "ps1,worker3");
  EXPECT_EQ(Tasks(chief, 4, 3), "worker0,worker4");
  EXPECT_EQ(chief.Describe(), "1 chief + 2 parameter servers + 5 workers");
}

}  // namespace
}  // namespace trainrun
