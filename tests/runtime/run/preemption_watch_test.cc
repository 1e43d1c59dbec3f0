// PreemptionWatch: a notice file's appearance, and a metadata-style URL polled on a
// loopback HTTP server whose answer changes from "nothing scheduled" to a
// preemption, as Azure Scheduled Events' does.
#include "runtime/run/preemption_watch.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fakes/metadata_server.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::MetadataServer;
using testing::TempDir;
using testing::WriteFile;

TEST(PreemptionWatchTest, ANoticeFilesAppearanceIsTheNotice) {
  TempDir tmp;
  PreemptionWatchOptions options;
  options.notice_file = tmp / "preempt";
  PreemptionWatch watch(options, [](const std::string&) {});
  EXPECT_TRUE(watch.enabled());
  EXPECT_FALSE(watch.CheckOnce(true));
  WriteFile(tmp / "preempt", "");
  std::optional<std::string> notice = watch.CheckOnce(true);
  ASSERT_TRUE(notice);
  EXPECT_NE(notice->find(tmp / "preempt"), std::string::npos) << *notice;
}

TEST(PreemptionWatchTest, AFileAlreadyThereIsStaleUntilWrittenAgain) {
  TempDir tmp;
  WriteFile(tmp / "preempt", "from an earlier start");
  PreemptionWatchOptions options;
  options.notice_file = tmp / "preempt";
  PreemptionWatch watch(options, [](const std::string&) {});
  EXPECT_TRUE(watch.stale_file());
  EXPECT_FALSE(watch.CheckOnce(true));
  struct timespec later[2] = {{0, UTIME_OMIT}, {2'000'000'000, 0}};  // a new mtime
  ASSERT_EQ(utimensat(AT_FDCWD, (tmp / "preempt").c_str(), later, 0), 0);
  EXPECT_TRUE(watch.CheckOnce(true));
}

TEST(PreemptionWatchTest, TheUrlIsANoticeOnlyWhenItAnswers2xxWithTheString) {
  MetadataServer server;
  PreemptionWatchOptions options;
  options.url = server.url();
  options.body_contains = "\"EventType\":\"Preempt\"";
  options.headers = {{"Metadata", "true"}};
  PreemptionWatch watch(options, [](const std::string&) {});
  server.Answer(200, R"({"DocumentIncarnation":1,"Events":[]})");
  EXPECT_FALSE(watch.CheckOnce(true));
  server.Answer(404, "\"EventType\":\"Preempt\"");  // not a 2xx
  EXPECT_FALSE(watch.CheckOnce(true));
  server.Answer(200, R"({"Events":[{"EventId":"1","EventType":"Preempt"}]})");
  EXPECT_FALSE(watch.CheckOnce(false)) << "polled only when asked";
  std::optional<std::string> notice = watch.CheckOnce(true);
  ASSERT_TRUE(notice);
  EXPECT_NE(notice->find(server.url()), std::string::npos) << *notice;
  ASSERT_FALSE(server.requests().empty());
  EXPECT_NE(server.requests().back().find("Metadata: true"), std::string::npos);
}

TEST(PreemptionWatchTest, AnyOkAnswerIsTheNoticeWithoutAString) {
  MetadataServer server;
  PreemptionWatchOptions options;
  options.url = server.url();
  PreemptionWatch watch(options, [](const std::string&) {});
  server.Answer(404, "");  // AWS spot instance-action before the action
  EXPECT_FALSE(watch.CheckOnce(true));
  server.Answer(200, R"({"action": "terminate"})");
  EXPECT_TRUE(watch.CheckOnce(true));
}

TEST(PreemptionWatchTest, TheThreadCallsOnNoticeOnceAndAnUnreachableUrlIsNoNotice) {
  TempDir tmp;
  PreemptionWatchOptions options;
  options.notice_file = tmp / "preempt";
  options.url = "http://127.0.0.1:1/nothing-listens";
  options.url_interval = std::chrono::milliseconds(20);
  options.file_interval = std::chrono::milliseconds(20);
  std::atomic<int> calls{0};
  std::promise<std::string> told;
  PreemptionWatch watch(options, [&](const std::string& why) {
    if (calls++ == 0) told.set_value(why);
  });
  watch.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls.load(), 0);
  WriteFile(tmp / "preempt", "");
  std::future<std::string> why = told.get_future();
  ASSERT_EQ(why.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_NE(why.get().find("appeared"), std::string::npos);
  watch.Stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST(PreemptionWatchTest, NothingConfiguredIsOff) {
  PreemptionWatch watch(PreemptionWatchOptions{}, [](const std::string&) {});
  EXPECT_FALSE(watch.enabled());
  watch.Start();
  watch.Stop();
}

}  // namespace
}  // namespace trainrun
