// Where a node stands, from each scheduler's environment.
#include "runtime/cluster/cluster_discovery.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

Placement Discover(DiscoveryInput in) {
  Result<Placement> p = DiscoverPlacement(in);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : Placement{};
}

Status DiscoverError(DiscoveryInput in) {
  Result<Placement> p = DiscoverPlacement(in);
  EXPECT_FALSE(p.ok()) << "expected an error, got node " << p->node_rank << " of " << p->node_count;
  return p.status();
}

TEST(ClusterDiscoveryTest, NothingMeansOneNode) {
  Placement p = Discover({});
  EXPECT_EQ(p.node_rank, 0);
  EXPECT_EQ(p.node_count, 1);
  EXPECT_EQ(p.source, "default (single node)");
}

TEST(ClusterDiscoveryTest, Flags) {
  DiscoveryInput in;
  in.node_rank = 2;
  in.nnodes = 4;
  in.master_addr = "head.example";
  Placement p = Discover(in);
  EXPECT_EQ(p.node_rank, 2);
  EXPECT_EQ(p.node_count, 4);
  EXPECT_EQ(p.head, "head.example");
  EXPECT_EQ(p.source, "flags");
}

TEST(ClusterDiscoveryTest, SlurmWithAFullHostlist) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "4242"},
            {"SLURM_NODEID", "3"},
            {"SLURM_NNODES", "5"},
            {"SLURM_STEP_NUM_NODES", "5"},
            {"SLURM_JOB_NODELIST", "gpu-[001-004,010]"},
            {"SLURMD_NODENAME", "gpu-004"}};
  Placement p = Discover(in);
  EXPECT_EQ(p.node_rank, 3);
  EXPECT_EQ(p.node_count, 5);
  EXPECT_EQ(p.head, "gpu-001");
  EXPECT_EQ(p.source, "Slurm");
  EXPECT_EQ(p.scheduler_job_id, "slurm:4242");
  EXPECT_NE(p.reason.find("first of SLURM_JOB_NODELIST=gpu-[001-004,010]"), std::string::npos)
      << p.reason;
}

TEST(ClusterDiscoveryTest, SlurmStepValuesWinOverTheAllocation) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "1"},
            {"SLURM_NODEID", "1"},
            {"SLURM_JOB_NUM_NODES", "8"},
            {"SLURM_STEP_NUM_NODES", "2"},
            {"SLURM_STEP_NODELIST", "a[7-8]"},
            {"SLURM_JOB_NODELIST", "a[1-8]"}};
  Placement p = Discover(in);
  EXPECT_EQ(p.node_count, 2);
  EXPECT_EQ(p.head, "a7");
}

TEST(ClusterDiscoveryTest, SlurmThatContradictsItselfIsAnError) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "1"},
            {"SLURM_NODEID", "0"},
            {"SLURM_NNODES", "3"},
            {"SLURM_JOB_NODELIST", "a[1-2]"}};
  EXPECT_NE(DiscoverError(in).message().find("names 2 host(s) but SLURM_NNODES=3"),
            std::string::npos);
  in.env = {{"SLURM_JOB_ID", "1"}, {"SLURM_NODEID", "5"}, {"SLURM_NNODES", "2"}};
  EXPECT_NE(DiscoverError(in).message().find("SLURM_NODEID=5 is not below SLURM_NNODES=2"),
            std::string::npos);
  in.env = {{"SLURM_JOB_ID", "1"}, {"SLURM_NODEID", "x"}};
  EXPECT_NE(DiscoverError(in).message().find("SLURM_NODEID=\"x\""), std::string::npos);
}

// `srun --ntasks-per-node=2` starts two trainruns per node, both SLURM_NODEID
// 0 on the first node: each fails at once, saying how to start trainrun.
TEST(ClusterDiscoveryTest, SrunWithMoreTasksThanNodesIsAnError) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "9"},
            {"SLURM_NODEID", "0"},
            {"SLURM_NNODES", "2"},
            {"SLURM_JOB_NODELIST", "n[1-2]"},
            {"SLURM_STEP_NUM_NODES", "2"},
            {"SLURM_STEP_NUM_TASKS", "4"},
            {"SLURM_STEP_NODELIST", "n[1-2]"}};
  Status s = DiscoverError(in);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("srun started 4 trainruns on 2 node(s) (SLURM_STEP_NUM_TASKS=4, "
                             "SLURM_STEP_NUM_NODES=2)"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("srun --ntasks-per-node=1"), std::string::npos);
  in.env["SLURM_STEP_NUM_TASKS"] = "2";
  EXPECT_EQ(Discover(in).node_count, 2);
}

// A batch script (or an salloc shell) of a 3-node allocation runs on its first
// node only: trainrun started there without srun would wait for nodes that never
// come.
TEST(ClusterDiscoveryTest, AMultiNodeAllocationWithoutSrunIsAnError) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "9"},
            {"SLURM_NODEID", "0"},
            {"SLURM_NNODES", "3"},
            {"SLURM_JOB_NODELIST", "n[1-3]"},
            {"SLURM_TASKS_PER_NODE", "1(x3)"}};
  Status s = DiscoverError(in);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("started without srun in a 3-node Slurm allocation (SLURM_NNODES=3"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("srun --ntasks-per-node=1 trainrun run JOB"), std::string::npos);
  // One node needs no srun.
  in.env = {{"SLURM_JOB_ID", "9"}, {"SLURM_NODEID", "0"}, {"SLURM_NNODES", "1"}};
  EXPECT_EQ(Discover(in).node_count, 1);
}

TEST(ClusterDiscoveryTest, TheDefaultControlPortComesFromTheSlurmJobId) {
  EXPECT_EQ(DefaultControlPort({}).port, 29400);
  EXPECT_EQ(DefaultControlPort({}).reason, "the default 29400");
  ControlPortChoice c = DefaultControlPort({{"SLURM_JOB_ID", "4242"}});
  EXPECT_EQ(c.port, 29642);
  EXPECT_EQ(c.reason, "29400 + SLURM_JOB_ID 4242 mod 1000");
  EXPECT_EQ(DefaultControlPort({{"SLURM_JOBID", "1999"}}).port, 30399);
  // Consecutive jobs sharing a head node get different ports.
  EXPECT_NE(DefaultControlPort({{"SLURM_JOB_ID", "4243"}}).port, c.port);
  // An id that is not a number is hashed, the same on every node, into the range.
  ControlPortChoice hashed = DefaultControlPort({{"SLURM_JOB_ID", "het_7+1"}});
  EXPECT_EQ(hashed.port, DefaultControlPort({{"SLURM_JOB_ID", "het_7+1"}}).port);
  EXPECT_GE(hashed.port, 29400);
  EXPECT_LT(hashed.port, 30400);
  // Kubernetes pods each have their own address: the fixed default.
  EXPECT_EQ(DefaultControlPort({{"JOB_COMPLETION_INDEX", "0"}, {"JOBSET_NAME", "j"}}).port, 29400);
}

TEST(ClusterDiscoveryTest, AJobFileThatDisagreesWithTheSchedulerIsAnError) {
  DiscoveryInput in;
  in.job_file = "job.json";
  in.job_node_count = 2;
  in.env = {{"SLURM_JOB_ID", "1"},
            {"SLURM_NODEID", "0"},
            {"SLURM_NNODES", "4"},
            {"SLURM_STEP_NUM_NODES", "4"},
            {"SLURM_JOB_NODELIST", "n[1-4]"}};
  Status s = DiscoverError(in);
  EXPECT_EQ(s.code(), StatusCode::kInvalidJob);
  EXPECT_NE(s.message().find("job.json: /nodeCount 2 disagrees with Slurm"), std::string::npos)
      << s.message();
  // Flags win over the job file, and say so.
  in.env.clear();
  in.nnodes = 3;
  in.node_rank = 0;
  Placement p = Discover(in);
  EXPECT_EQ(p.node_count, 3);
  ASSERT_FALSE(p.notes.empty());
  EXPECT_NE(p.notes[0].find("--nnodes 3 overrides job.json /nodeCount 2"), std::string::npos);
}

TEST(ClusterDiscoveryTest, FlagsOverrideTheSchedulerWithANote) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "1"},
            {"SLURM_NODEID", "1"},
            {"SLURM_NNODES", "2"},
            {"SLURM_STEP_NUM_NODES", "2"},
            {"SLURM_JOB_NODELIST", "n[1-2]"}};
  in.master_addr = "10.1.1.1";
  Placement p = Discover(in);
  EXPECT_EQ(p.head, "10.1.1.1");
  EXPECT_EQ(p.node_rank, 1);
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_NE(p.notes[0].find("--master-addr 10.1.1.1 overrides Slurm's head n1"), std::string::npos);
}

TEST(ClusterDiscoveryTest, KubernetesIndexedJobNeedsAHeadAndANodeCount) {
  DiscoveryInput in;
  in.env = {{"JOB_COMPLETION_INDEX", "2"}};
  in.job_node_count = 4;
  in.job_file = "job.json";
  Status s = DiscoverError(in);
  EXPECT_NE(s.message().find("does not know the head's address"), std::string::npos) << s.message();
  in.job_head_host = "trainer-0.trainer";
  Placement p = Discover(in);
  EXPECT_EQ(p.node_rank, 2);
  EXPECT_EQ(p.node_count, 4);
  EXPECT_EQ(p.head, "trainer-0.trainer");
  EXPECT_EQ(p.source, "job file + Kubernetes");
}

TEST(ClusterDiscoveryTest, KubernetesJobSetDerivesTheHeadsHostName) {
  DiscoveryInput in;
  in.env = {{"JOB_COMPLETION_INDEX", "1"},
            {"JOBSET_NAME", "llm"},
            {"REPLICATED_JOB_NAME", "workers"},
            {"JOB_INDEX", "0"}};
  in.nnodes = 2;
  Placement p = Discover(in);
  EXPECT_EQ(p.head, "llm-workers-0-0.llm");
  EXPECT_EQ(p.node_rank, 1);
  EXPECT_EQ(p.scheduler_job_id, "jobset:llm");
  in.env["JOB_INDEX"] = "1";
  EXPECT_NE(DiscoverError(in).message().find("more than one Job"), std::string::npos);
}

TEST(ClusterDiscoveryTest, KubeflowVariables) {
  DiscoveryInput in;
  in.env = {{"MASTER_ADDR", "job-master-0"}, {"RANK", "1"}, {"WORLD_SIZE", "3"}};
  Placement p = Discover(in);
  EXPECT_EQ(p.node_rank, 1);
  EXPECT_EQ(p.node_count, 3);
  EXPECT_EQ(p.head, "job-master-0");
  EXPECT_EQ(p.source, "Kubeflow");
  in.env = {{"PET_MASTER_ADDR", "m"}, {"PET_NODE_RANK", "0"}, {"PET_NNODES", "2"}, {"RANK", "9"}};
  p = Discover(in);
  EXPECT_EQ(p.node_count, 2);
  EXPECT_EQ(p.node_rank, 0);
  in.env = {{"MASTER_ADDR", "m"}, {"RANK", "3"}, {"WORLD_SIZE", "3"}};
  EXPECT_NE(DiscoverError(in).message().find("RANK=3 is not below WORLD_SIZE=3"),
            std::string::npos);
}

TEST(ClusterDiscoveryTest, AzureBatchFindsThisNodeByItsAddress) {
  DiscoveryInput in;
  in.env = {{"AZ_BATCH_HOST_LIST", "10.0.0.5,10.0.0.4,10.0.0.6"},
            {"AZ_BATCH_MASTER_NODE", "10.0.0.4:6000"},
            {"AZ_BATCH_JOB_ID", "j"},
            {"AZ_BATCH_TASK_ID", "t"}};
  in.local_addresses = {"127.0.0.1", "10.0.0.6"};
  Placement p = Discover(in);
  EXPECT_EQ(p.node_count, 3);
  EXPECT_EQ(p.head, "10.0.0.4");
  EXPECT_EQ(p.node_rank, 2);  // master first, then 10.0.0.5, then 10.0.0.6
  EXPECT_EQ(p.scheduler_job_id, "azurebatch:j/t");
  in.local_addresses = {"10.0.0.4"};
  EXPECT_EQ(Discover(in).node_rank, 0);
  in.env["AZ_BATCHAI_TASK_INDEX"] = "1";
  EXPECT_EQ(Discover(in).node_rank, 1);
  in.env.erase("AZ_BATCHAI_TASK_INDEX");
  in.local_addresses = {"192.168.1.1"};
  EXPECT_NE(DiscoverError(in).message().find("none of this node's addresses (192.168.1.1)"),
            std::string::npos);
  in.env = {{"AZ_BATCH_NODE_LIST", "10.0.0.4;10.0.0.5"}, {"AZ_BATCH_MASTER_NODE", "10.9.9.9:1"}};
  EXPECT_NE(DiscoverError(in).message().find("is not in AZ_BATCH_NODE_LIST"), std::string::npos);
}

TEST(ClusterDiscoveryTest, SageMakerResourceConfig) {
  DiscoveryInput in;
  in.sagemaker_config =
      R"({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"],
                            "network_interface_name": "eth1"})";
  Placement p = Discover(in);
  EXPECT_EQ(p.node_rank, 1);
  EXPECT_EQ(p.node_count, 2);
  EXPECT_EQ(p.head, "algo-1");
  EXPECT_EQ(p.interface_hint, "eth1");
  EXPECT_EQ(p.source, "SageMaker");
  in.sagemaker_config = R"({"current_host": "algo-9", "hosts": ["algo-1"]})";
  EXPECT_NE(DiscoverError(in).message().find("current_host \"algo-9\" is not in hosts"),
            std::string::npos);
  in.sagemaker_config = "not json";
  EXPECT_NE(DiscoverError(in).message().find(kSageMakerResourceConfig), std::string::npos);
}

TEST(ClusterDiscoveryTest, TheFirstSchedulerWinsAndTheOthersAreNoted) {
  DiscoveryInput in;
  in.env = {{"SLURM_JOB_ID", "1"},
            {"SLURM_NODEID", "0"},
            {"SLURM_NNODES", "2"},
            {"SLURM_JOB_NODELIST", "n[1-2]"},
            {"SLURM_STEP_NUM_NODES", "2"},
            {"MASTER_ADDR", "x"},
            {"RANK", "5"},
            {"WORLD_SIZE", "8"}};
  Placement p = Discover(in);
  EXPECT_EQ(p.source, "Slurm");
  EXPECT_EQ(p.node_count, 2);
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_NE(p.notes[0].find("Kubeflow variables are present too and ignored"), std::string::npos);
}

TEST(ClusterDiscoveryTest, AMultiNodeJobWithoutANodeRankIsAnError) {
  DiscoveryInput in;
  in.job_node_count = 2;
  in.job_file = "job.json";
  Status s = DiscoverError(in);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("pass --node-rank"), std::string::npos);
  in.node_rank = 2;
  EXPECT_NE(DiscoverError(in).message().find("node rank 2 is out of range for a 2-node job"),
            std::string::npos);
}

}  // namespace
}  // namespace trainrun
