// The job file's `checkpoints`, `resumeFrom`, `preemptionNoticeFile` and
// `preemptionNoticeUrl` (README "Checkpoints", "Preemption").
#include <gtest/gtest.h>

#include "runtime/run/job_config.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;

class CheckpointConfigTest : public ::testing::Test {
 protected:
  Result<JobConfig> Parse(const std::string& fields) {
    return ParseJobText(R"({"command": ["true"], )" + fields + "}", dir_ / "job.json");
  }
  std::string Error(const std::string& fields) {
    Result<JobConfig> job = Parse(fields);
    return job.ok() ? "" : job.status().message();
  }
  TempDir dir_;
};

TEST_F(CheckpointConfigTest, OffUnlessGivenAndTheDefaults) {
  Result<JobConfig> job = Parse(R"("arguments": [])");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_FALSE(job->checkpoints.enabled);
  job = Parse(R"("checkpoints": true)");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_TRUE(job->checkpoints.enabled);
  EXPECT_EQ(job->checkpoints.path, "checkpoints");
  EXPECT_EQ(job->checkpoints.uri, "");
  EXPECT_EQ(job->checkpoints.quiet_period_seconds, 10);
  EXPECT_EQ(job->checkpoints.keep_last, 3);
  EXPECT_EQ(job->checkpoints.max_upload_bytes_per_second, 0u);
  // resumeFrom alone turns them on.
  job = Parse(R"("resumeFrom": "mnist_20261126_090000_abcdef")");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_TRUE(job->checkpoints.enabled);
  EXPECT_EQ(job->resume_from, "mnist_20261126_090000_abcdef");
}

TEST_F(CheckpointConfigTest, EveryFieldIsRead) {
  Result<JobConfig> job = Parse(R"("Checkpoints": {"path": "out/ckpt/", "uri": "s3://b/ckpt",
      "quietPeriodSeconds": 0, "keepLast": 0, "maxUploadBytesPerSecond": "50M",
      "scanIntervalSeconds": 0.5},
      "preemptionNoticeFile": "notice",
      "preemptionNoticeUrl": {"url": "http://169.254.169.254/metadata/scheduledevents",
                              "bodyContains": "Preempt", "headers": {"Metadata": "true"},
                              "intervalSeconds": 2})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->checkpoints.path, "out/ckpt");
  EXPECT_EQ(job->checkpoints.uri, "s3://b/ckpt");
  EXPECT_EQ(job->checkpoints.quiet_period_seconds, 0);
  EXPECT_EQ(job->checkpoints.keep_last, 0);
  EXPECT_EQ(job->checkpoints.max_upload_bytes_per_second, 50u << 20);
  EXPECT_EQ(job->checkpoints.scan_interval_seconds, 0.5);
  EXPECT_EQ(job->preemption.notice_file, dir_ / "notice");
  EXPECT_EQ(job->preemption.notice_url, "http://169.254.169.254/metadata/scheduledevents");
  EXPECT_EQ(job->preemption.body_contains, "Preempt");
  ASSERT_EQ(job->preemption.headers.size(), 1u);
  EXPECT_EQ(job->preemption.headers[0].first, "Metadata");
  EXPECT_EQ(job->preemption.poll_interval_seconds, 2);
  job = Parse(R"("preemptionNoticeUrl": "http://127.0.0.1:9/spot")");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->preemption.notice_url, "http://127.0.0.1:9/spot");
  EXPECT_EQ(job->preemption.body_contains, "");
}

TEST_F(CheckpointConfigTest, BadValuesNameTheField) {
  EXPECT_NE(Error(R"("checkpoints": {"path": "../elsewhere"})")
                .find("/checkpoints/path: \"../elsewhere\" must be a folder inside the working "
                      "directory"),
            std::string::npos);
  EXPECT_NE(Error(R"("checkpoints": {"path": "/abs"})").find("/checkpoints/path"),
            std::string::npos);
  EXPECT_NE(Error(R"("checkpoints": {"keepLast": -1})").find("/checkpoints/keepLast"),
            std::string::npos);
  EXPECT_NE(Error(R"("checkpoints": {"quietPeriodSecond": 3})")
                .find("/checkpoints/quietPeriodSecond: unknown field; did you mean "
                      "\"quietPeriodSeconds\"?"),
            std::string::npos);
  EXPECT_NE(Error(R"("checkpoints": 3)").find("/checkpoints: must be true, false or an object"),
            std::string::npos);
  EXPECT_NE(Error(R"("preemptionNoticeUrl": "ftp://x/y")")
                .find("/preemptionNoticeUrl: \"ftp://x/y\" must be an http:// or https:// URL"),
            std::string::npos);
  EXPECT_NE(Error(R"("preemptionNoticeUrl": {"bodyContains": "x"})")
                .find("/preemptionNoticeUrl/url: is required"),
            std::string::npos);
}

}  // namespace
}  // namespace trainrun
