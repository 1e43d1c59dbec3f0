// TF_CONFIG of ParameterServer jobs: every node's view of the same cluster.
#include "runtime/cluster/tf_roles.h"

#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/cluster/communicator_env.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using nlohmann::json;

// A job of `counts[n]` processes on node n at 10.0.0.<n+1>, ports 2000+rank.
JobAssignment Job(const std::vector<int>& counts) {
  JobAssignment job;
  int rank = 0;
  for (size_t n = 0; n < counts.size(); ++n) {
    NodeSlot node;
    node.node_rank = static_cast<int>(n);
    node.address = "10.0.0." + std::to_string(n + 1);
    node.first_rank = rank;
    node.process_count = counts[n];
    for (int l = 0; l < counts[n]; ++l) node.tf_ports.push_back(2000 + rank++);
    job.nodes.push_back(node);
  }
  job.world_size = rank;
  return job;
}

json Config(const JobAssignment& job, const TfRoles& roles, int rank) {
  Result<std::string> text = TfConfigWithRoles(job, roles, rank);
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? json::parse(*text) : json();
}

TEST(TfRolesTest, OneNodeWithOneServerAndTwoWorkers) {
  const TfRoles roles{.chief = 0, .ps = 1, .workers = 2};
  const JobAssignment job = Job({3});
  const json expected_cluster = {{"ps", {"10.0.0.1:2000"}},
                                 {"worker", {"10.0.0.1:2001", "10.0.0.1:2002"}}};
  const std::vector<std::pair<std::string, int>> tasks = {{"ps", 0}, {"worker", 0}, {"worker", 1}};
  for (int rank = 0; rank < 3; ++rank) {
    json c = Config(job, roles, rank);
    EXPECT_EQ(c["cluster"], expected_cluster) << c.dump();
    EXPECT_EQ(c["task"]["type"], tasks[rank].first);
    EXPECT_EQ(c["task"]["index"], tasks[rank].second);
  }
}

TEST(TfRolesTest, ChiefServersAndWorkersAcrossNodesAreTheSameOnEveryRank) {
  // 1 chief + 2 ps + 3 workers over 3 nodes: chief, ps 0, ps 1, worker 0, 1, 2
  // dealt to nodes 0, 1, 2, 0, 1, 2.
  const TfRoles roles{.chief = 1, .ps = 2, .workers = 3};
  const JobAssignment job = Job({2, 2, 2});
  const json expected = {{"chief", {"10.0.0.1:2000"}},
                         {"ps", {"10.0.0.2:2002", "10.0.0.3:2004"}},
                         {"worker", {"10.0.0.1:2001", "10.0.0.2:2003", "10.0.0.3:2005"}}};
  const std::vector<std::pair<std::string, int>> tasks = {
      {"chief", 0}, {"worker", 0}, {"ps", 0}, {"worker", 1}, {"ps", 1}, {"worker", 2}};
  std::set<std::string> addresses;
  for (int rank = 0; rank < 6; ++rank) {
    json c = Config(job, roles, rank);
    EXPECT_EQ(c["cluster"], expected) << "rank " << rank << ": " << c.dump();
    EXPECT_EQ(c["task"]["type"], tasks[rank].first) << "rank " << rank;
    EXPECT_EQ(c["task"]["index"], tasks[rank].second) << "rank " << rank;
    Result<TfTask> task = TfTaskOf(job, roles, rank);
    ASSERT_TRUE(task.ok());
    EXPECT_EQ(task->server(), tasks[rank].first == "ps");
  }
  for (const auto& [type, list] : expected.items()) {
    for (const json& a : list) addresses.insert(a.get<std::string>());
  }
  EXPECT_EQ(addresses.size(), 6u) << "each process its own host:port";
}

TEST(TfRolesTest, UnevenNodesAndNoChiefLeaveChiefOut) {
  const TfRoles roles{.chief = 0, .ps = 1, .workers = 2};  // 2 nodes: 2 + 1
  const JobAssignment job = Job({2, 1});
  json c = Config(job, roles, 2);
  EXPECT_FALSE(c["cluster"].contains("chief"));
  EXPECT_EQ(c["cluster"]["ps"], json({"10.0.0.1:2000"}));
  EXPECT_EQ(c["cluster"]["worker"], json({"10.0.0.2:2002", "10.0.0.1:2001"}));
  EXPECT_EQ(c["task"], json({{"type", "worker"}, {"index", 0}}));
}

TEST(TfRolesTest, ANodeRunningAnotherCountIsAnInternalError) {
  const TfRoles roles{.chief = 0, .ps = 1, .workers = 2};
  Result<std::string> text = TfConfigWithRoles(Job({3, 1}), roles, 0);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kInternal);
}

TEST(TfRolesTest, CommunicatorVariablesGiveTfConfigForParameterServer) {
  const TfRoles roles{.chief = 0, .ps = 1, .workers = 1};
  Result<std::vector<TrainrunVar>> vars =
      CommunicatorVariables(Communicator::kParameterServer, Job({2}), 0, 1, roles);
  ASSERT_TRUE(vars.ok()) << vars.status().message();
  std::string tf_config;
  for (const TrainrunVar& v : *vars) {
    if (v.name == "TF_CONFIG") tf_config = v.value;
  }
  EXPECT_EQ(json::parse(tf_config)["task"], json({{"type", "worker"}, {"index", 0}}));
  EXPECT_FALSE(CommunicatorVariables(Communicator::kParameterServer, Job({2}), 0, 0).ok())
      << "roles are needed";
  EXPECT_TRUE(NeedsTfPorts(Communicator::kParameterServer));
  EXPECT_FALSE(NeedsTfPorts(Communicator::kNccl));
}

class TfRolesJobTest : public ::testing::Test {
 protected:
  TfRolesJobTest() { testing::WriteFile(dir_ / "train.py", "print('hi')\n"); }
  Result<JobConfig> Parse(const std::string& fields) {
    return ParseJobText(R"({"script": "train.py", )" + fields + "}", dir_ / "job.json");
  }
  testing::TempDir dir_;
};

TEST_F(TfRolesJobTest, AzureMlsDefaultSectionIsAcceptedWithAnyCommunicator) {
  Result<JobConfig> job = Parse(
      R"("communicator": "Nccl", "tensorflow": {"workerCount": 1, "parameterServerCount": 1})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  ASSERT_TRUE(ApplyTfRoles(&*job, 2, 0).ok());
  EXPECT_FALSE(job->tensorflow.roles) << "only ParameterServer has roles";
  EXPECT_FALSE(job->process_count_per_node);
}

TEST_F(TfRolesJobTest, CountsDefaultAndThisNodeGetsItsShare) {
  // No counts, no processCountPerNode: 1 parameter server, one worker per node.
  Result<JobConfig> job = Parse(R"("communicator": "ParameterServer", "nodeCount": 3)");
  ASSERT_TRUE(job.ok()) << job.status().message();
  ASSERT_TRUE(ApplyTfRoles(&*job, 3, 0).ok());
  ASSERT_TRUE(job->tensorflow.roles);
  EXPECT_EQ(job->tensorflow.roles->ps, 1);
  EXPECT_EQ(job->tensorflow.roles->workers, 3);
  EXPECT_EQ(job->process_count_per_node, 2) << "node 0: ps 0 and worker 2";

  // processCountPerNode given: the workers fill what the servers and chief leave.
  job = Parse(R"("communicator": "ParameterServer", "processCountPerNode": 2,
                 "tensorflow": {"parameterServerCount": 2, "chief": true})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  ASSERT_TRUE(ApplyTfRoles(&*job, 3, 2).ok());
  EXPECT_EQ(job->tensorflow.roles->workers, 3);
  EXPECT_EQ(job->process_count_per_node, 2);
}

TEST_F(TfRolesJobTest, MismatchedCountsAreRefusedNamingTheFields) {
  Result<JobConfig> job = Parse(R"("communicator": "ParameterServer", "processCountPerNode": 2,
               "tensorflow": {"workerCount": 4, "parameterServerCount": 1})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  Result<TfRoles> roles = ResolveTfRoles(*job, 2);
  ASSERT_FALSE(roles.ok());
  EXPECT_EQ(roles.status().code(), StatusCode::kInvalidJob);
  EXPECT_NE(roles.status().message().find(
                "/tensorflow: 1 parameter server + 4 workers = 5 processes, but nodeCount 2 x "
                "processCountPerNode 2 = 4"),
            std::string::npos)
      << roles.status().message();
  EXPECT_TRUE(ResolveTfRoles(*job, 1).status().message().find("nodeCount 1") != std::string::npos);

  job = Parse(R"("communicator": "ParameterServer", "tensorflow": {"workerCount": 1})");
  ASSERT_TRUE(job.ok());
  roles = ResolveTfRoles(*job, 3);
  ASSERT_FALSE(roles.ok());
  EXPECT_NE(roles.status().message().find("a node would run nothing"), std::string::npos)
      << roles.status().message();

  job = Parse(R"("communicator": "ParameterServer", "processCountPerNode": 1,
                 "tensorflow": {"parameterServerCount": 1})");
  ASSERT_TRUE(job.ok());
  roles = ResolveTfRoles(*job, 1);
  ASSERT_FALSE(roles.ok());
  EXPECT_NE(roles.status().message().find("leave no worker"), std::string::npos)
      << roles.status().message();
}

}  // namespace
}  // namespace trainrun
