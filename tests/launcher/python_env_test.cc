// `trainrun run` with environment.python packages (README "Dependencies"): the ranks
// run in a venv built on the node from a wheelhouse this suite makes with `pip wheel`
// (no network), two trainruns racing for it build it once, and a failed install
// stops the job before the ranks start with pip's error and exit 65.
#include <unistd.h>

#include <filesystem>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/launcher/trainrun_runner.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPython = "/usr/bin/python3";

class PythonEnvRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (access(kPython, X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import venv, pip, wheel' 2>/dev/null") != 0) {
      skip_ =
          "needs /usr/bin/python3 with venv, pip and wheel (python3-venv, python3-pip, "
          "python3-wheel)";
      return;
    }
    house_ = new TempDir();
    const std::string pkg = *house_ / "src/tinypkg_a";
    WriteFile(pkg + "/setup.py",
              "from setuptools import setup\n"
              "setup(name='tinypkg_a', version='1.0', packages=['tinypkg_a'])\n");
    WriteFile(pkg + "/tinypkg_a/__init__.py", "VALUE = 'tinypkg_a-1.0'\n");
    const std::string command =
        "/usr/bin/python3 -m pip wheel --no-deps --no-build-isolation "
        "--no-index --quiet --wheel-dir " +
        (*house_ / "wheels") + " " + pkg + " >/dev/null 2>&1";
    if (system(command.c_str()) != 0) skip_ = "pip wheel could not build the wheelhouse";
  }
  static void TearDownTestSuite() {
    delete house_;
    house_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    WriteFile(dir_ / "src/train.py",
              "import os, sys, tinypkg_a\n"
              "open(os.path.join(os.environ['TRAINRUN_OUTPUTS_DIR'], 'ran'), 'w').close()\n"
              "print('value', tinypkg_a.VALUE)\n"
              "print('venv', os.environ.get('VIRTUAL_ENV') == sys.prefix)\n");
  }

  // A job whose script imports `package`; pip is pointed at the wheelhouse by the
  // job's own environment variables.
  std::string Job(const std::string& run_id, const std::string& package) {
    json job = {
        {"script", "train.py"},
        {"sourceDirectory", "src"},
        {"experimentName", "deps"},
        {"runId", run_id},
        {"environment",
         {{"environmentVariables", {{"PIP_NO_INDEX", "1"}, {"PIP_FIND_LINKS", *house_ / "wheels"}}},
          {"python",
           {{"interpreterPath", kPython},
            {"userManagedDependencies", false},
            {"condaDependencies",
             {{"dependencies", json::array({"python=3", json{{"pip", {package}}}})}}}}}}}};
    const std::string path = dir_ / (run_id + ".json");
    WriteFile(path, job.dump(2));
    return path;
  }
  std::vector<std::string> Args(const std::string& job) {
    return {TrainrunBinary(), "run",       job,          "--history",
            dir_ / "history", "--workdir", dir_ / "work"};
  }
  std::vector<std::string> Env() { return {"TRAINRUN_CACHE_DIR=" + (dir_ / "cache")}; }
  std::string SystemLog(const std::string& run_id) {
    return ReadFile(dir_ / ("history/deps/" + run_id + "/system_logs/trainrun_node_0.log"));
  }

  static inline std::string skip_;
  static inline TempDir* house_ = nullptr;
  TempDir dir_;
};

TEST_F(PythonEnvRunTest, TwoRunsRacingBuildOnceAndBothRunInTheEnvironment) {
  fs::create_directories(dir_ / "one");
  fs::create_directories(dir_ / "two");
  TrainrunProcess one(Args(Job("one", "tinypkg_a")), Env(), dir_ / "one");
  TrainrunProcess two(Args(Job("two", "tinypkg_a")), Env(), dir_ / "two");
  Invocation a = one.Wait(std::chrono::seconds(280));
  Invocation b = two.Wait(std::chrono::seconds(280));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  for (const Invocation* r : {&a, &b}) {
    EXPECT_NE(r->out.find("value tinypkg_a-1.0"), std::string::npos) << r->out;
    EXPECT_NE(r->out.find("venv True"), std::string::npos) << r->out;
    // pip's own lines are in the system log, not on the console.
    EXPECT_EQ(r->err.find("Successfully installed"), std::string::npos) << r->err;
    EXPECT_EQ(r->out.find("Successfully installed"), std::string::npos) << r->out;
  }
  // One built (its console says so once, its system log has pip's lines), the other
  // waited and took it from the cache without running pip.
  const bool one_built = a.err.find(": building (") != std::string::npos;
  EXPECT_NE(one_built, b.err.find(": building (") != std::string::npos) << a.err << b.err;
  const Invocation& waited = one_built ? b : a;
  EXPECT_NE(waited.err.find(": cached ("), std::string::npos) << waited.err;
  const std::string built_log = SystemLog(one_built ? "one" : "two");
  const std::string cached_log = SystemLog(one_built ? "two" : "one");
  EXPECT_NE(built_log.find("pip: Successfully installed tinypkg_a-1.0"), std::string::npos)
      << built_log;
  EXPECT_EQ(cached_log.find("pip: "), std::string::npos) << cached_log;
  // The run record says which environment the ranks used.
  json record = json::parse(ReadFile(dir_ / "history/deps/one/run.json"));
  EXPECT_EQ(record["details"]["pythonEnvironment"]["tool"], "venv") << record.dump(2);
}

TEST_F(PythonEnvRunTest, FailedInstallStopsTheJobBeforeTheRanksWithExit65) {
  fs::create_directories(dir_ / "out");
  Invocation r = TrainrunProcess(Args(Job("broken", "tinypkg_missing==9.9")), Env(), dir_ / "out")
                     .Wait(std::chrono::seconds(280));
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_NE(r.err.find("pip install exited with exit code 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No matching distribution found for tinypkg_missing"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "work/deps/broken/wd/outputs/ran"));
  // Finalizing still ran: the run is in history as failed, its system log kept.
  json record = json::parse(ReadFile(dir_ / "history/deps/broken/run.json"));
  EXPECT_EQ(record["status"], "Failed");
  EXPECT_NE(SystemLog("broken").find("pip: ERROR:"), std::string::npos);
  // The count says what history got: the system log with pip's lines, not 0 files.
  EXPECT_NE(r.err.find("/history: 1 file(s), "), std::string::npos) << r.err;
  // history show prints pip's last lines as lines of their own, under the first.
  Invocation show =
      RunTrainrun({"history", "--history", dir_ / "history", "show", "broken"}, dir_.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("its last lines (all of them are in the system log):\n               "),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("\n               ERROR: No matching distribution found for "
                          "tinypkg_missing==9.9\n"),
            std::string::npos)
      << show.out;
  EXPECT_EQ(show.out.find("\\n"), std::string::npos) << show.out;
}

}  // namespace
}  // namespace trainrun::testing
