// The Python environments of environment.python (runtime/run/python_env.h) with the
// real venv and pip of Debian's /usr/bin/python3, against a wheelhouse the suite
// builds with `pip wheel` from tiny packages it writes: no network, no PyPI.
#include "runtime/run/python_env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "base/cancel.h"
#include "runtime/process/process_posix.h"
#include "runtime/process/rank_env.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

constexpr const char* kPython = "/usr/bin/python3";

class Recorder : public QuietReporter {
 public:
  void Info(std::string_view m) override { Add(m); }
  void Notice(std::string_view m) override { Add(m); }
  void Warning(std::string_view m) override { Add(m); }
  size_t Count(const std::string& text) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const std::string& l : lines_) n += l.find(text) != std::string::npos;
    return n;
  }
  std::string All() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const std::string& l : lines_) all += l + "\n";
    return all;
  }

 private:
  void Add(std::string_view m) {
    std::lock_guard lock(mu_);
    lines_.emplace_back(m);
  }
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// Writes a package NAME (module NAME with VALUE = "NAME-VERSION") under `dir`.
void WritePackage(const std::string& dir, const std::string& name, const std::string& version) {
  WriteFile(dir + "/" + name + "/setup.py", "from setuptools import setup\nsetup(name='" + name +
                                                "', version='" + version + "', packages=['" + name +
                                                "'])\n");
  WriteFile(dir + "/" + name + "/" + name + "/__init__.py",
            "VALUE = '" + name + "-" + version + "'\n");
}

// The wheelhouse, built once for the suite.
class PythonEnvTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (access(kPython, X_OK) != 0 || !Runs({kPython, "-c", "import venv, pip, wheel"})) {
      skip_ =
          "needs /usr/bin/python3 with venv, pip and wheel (python3-venv, python3-pip, "
          "python3-wheel)";
      return;
    }
    house_ = new TempDir();
    const std::string src = *house_ / "src";
    WritePackage(src, "tinypkg_a", "1.0");
    WritePackage(src, "tinypkg_b", "2.0");
    if (!Runs({kPython, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--quiet", "--wheel-dir", *house_ / "wheels", src + "/tinypkg_a",
               src + "/tinypkg_b"})) {
      skip_ = "pip wheel could not build the test's wheelhouse";
    }
  }
  static void TearDownTestSuite() {
    delete house_;
    house_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    WriteFile(source_ / "train.py", "print('hi')\n");
  }

  static bool Runs(const std::vector<std::string>& argv) {
    SpawnSpec spec;
    spec.argv = argv;
    spec.env = CurrentEnvironment();
    Result<ExitStatus> status = RunToCompletion(
        spec, [](std::string_view) {}, nullptr);
    return status.ok() && status->success();
  }

  // pip finds packages only in the wheelhouse, as a job's PIP_* variables would say.
  PythonEnvRequest Request(std::vector<std::string> pip) {
    PythonEnvRequest request;
    request.spec.interpreter_path = kPython;
    request.spec.pip = std::move(pip);
    request.source_directory = source_.path();
    request.cache_dir = cache_.path();
    request.env = CurrentEnvironment();
    request.env.push_back("PIP_NO_INDEX=1");
    request.env.push_back("PIP_FIND_LINKS=" + (*house_ / "wheels"));
    request.reporter = &reporter_;
    return request;
  }

  // One trainrun preparing the tinypkg_a environment on a thread of its own, as two
  // trainruns on one node would: its result, status and messages.
  struct Racer {
    std::unique_ptr<PythonEnv> env;
    Status status;
    Recorder logs;
    std::thread thread;
  };
  void StartRacer(Racer* racer, const CancelToken* cancel = nullptr) {
    racer->thread = std::thread([this, racer, cancel] {
      PythonEnvRequest request = Request({"tinypkg_a"});
      request.reporter = &racer->logs;
      request.cancel = cancel;
      Result<std::unique_ptr<PythonEnv>> env = PreparePythonEnv(request);
      racer->status = env.status();
      if (env.ok()) racer->env = std::move(*env);
    });
  }

  // What `code` prints when the environment's python runs it.
  std::string RunIn(const PythonEnv& env, const std::string& code) {
    Result<std::string> out = CaptureOutput({env.python(), "-c", code}, "");
    return out.ok() ? std::string(TrimRight(*out)) : "error: " + out.status().message();
  }
  static std::string_view TrimRight(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
    return s;
  }

  static inline std::string skip_;
  static inline TempDir* house_ = nullptr;
  TempDir cache_;
  TempDir source_;
  Recorder reporter_;
};

TEST_F(PythonEnvTest, FirstRunBuildsSecondFindsItWithoutRunningPip) {
  Result<std::unique_ptr<PythonEnv>> first = PreparePythonEnv(Request({"tinypkg_a"}));
  ASSERT_TRUE(first.ok()) << first.status().message() << "\n" << reporter_.All();
  ASSERT_TRUE(*first);
  EXPECT_TRUE((*first)->built());
  EXPECT_EQ((*first)->tool(), "venv");
  EXPECT_EQ(RunIn(**first, "import tinypkg_a; print(tinypkg_a.VALUE)"), "tinypkg_a-1.0");
  // --system-site-packages: what the image has stays importable (yaml: python3-yaml).
  EXPECT_EQ(RunIn(**first, "import sys; print(sys.prefix != sys.base_prefix)"), "True");
  // pip's own lines went to the reporter (the system log), one by one.
  EXPECT_GT(reporter_.Count("pip: "), 0u) << reporter_.All();
  EXPECT_EQ(reporter_.Count(": building ("), 1u);
  const std::string prefix = (*first)->prefix();
  EXPECT_TRUE(fs::is_symlink(cache_ / ("envs/" + (*first)->key())));
  first->reset();

  Recorder second_log;
  PythonEnvRequest again = Request({"tinypkg_a"});
  again.reporter = &second_log;
  Result<std::unique_ptr<PythonEnv>> second = PreparePythonEnv(again);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE((*second)->built());
  EXPECT_EQ((*second)->prefix(), prefix);
  EXPECT_EQ(second_log.Count(": cached ("), 1u) << second_log.All();
  // No venv and no pip ran: none of their lines were reported.
  EXPECT_EQ(second_log.Count("pip: "), 0u) << second_log.All();
  EXPECT_EQ(second_log.Count("venv: "), 0u) << second_log.All();
}

TEST_F(PythonEnvTest, ChangedSpecGetsItsOwnEnvironmentAndPruningSparesHeldOnes) {
  Result<std::unique_ptr<PythonEnv>> a = PreparePythonEnv(Request({"tinypkg_a"}));
  ASSERT_TRUE(a.ok()) << a.status().message();
  Result<std::unique_ptr<PythonEnv>> ab = PreparePythonEnv(Request({"tinypkg_a", "tinypkg_b"}));
  ASSERT_TRUE(ab.ok()) << ab.status().message();
  EXPECT_TRUE((*ab)->built());
  EXPECT_NE((*a)->key(), (*ab)->key());
  EXPECT_NE((*a)->prefix(), (*ab)->prefix());
  EXPECT_EQ(RunIn(**ab, "import tinypkg_b; print(tinypkg_b.VALUE)"), "tinypkg_b-2.0");
  EXPECT_EQ(RunIn(**a, "import importlib.util as u; print(u.find_spec('tinypkg_b') is None)"),
            "True");
  const std::string ab_prefix = (*ab)->prefix();
  ab->reset();  // ab's run ended; a's still holds its environment

  // requirements.txt is part of the spec: with userManagedDependencies false it is
  // installed, and a change to it is a new environment. A cache limit nothing fits
  // removes every environment no run holds, but never the one just built.
  WriteFile(source_ / "requirements.txt", "# the job's needs\ntinypkg_b==2.0\n");
  PythonEnvRequest with_file = Request({"tinypkg_a"});
  with_file.spec.use_requirements_file = true;
  with_file.max_cache_bytes = 1;
  Result<std::unique_ptr<PythonEnv>> file = PreparePythonEnv(with_file);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_TRUE((*file)->built());
  EXPECT_NE((*file)->key(), (*a)->key());
  EXPECT_EQ(RunIn(**file, "import tinypkg_b; print(tinypkg_b.VALUE)"), "tinypkg_b-2.0");
  EXPECT_TRUE(fs::exists((*a)->prefix())) << "held by a run";
  EXPECT_TRUE(fs::is_symlink(cache_ / ("envs/" + (*a)->key())));
  EXPECT_FALSE(fs::exists(ab_prefix)) << reporter_.All();
  EXPECT_EQ(reporter_.Count("from the cache, least recently used"), 1u) << reporter_.All();
}

TEST_F(PythonEnvTest, TwoRacingForOneKeyBuildItOnce) {
  Racer racers[2];
  for (Racer& racer : racers) StartRacer(&racer);
  for (Racer& racer : racers) racer.thread.join();
  ASSERT_TRUE(racers[0].status.ok()) << racers[0].status.message();
  ASSERT_TRUE(racers[1].status.ok()) << racers[1].status.message();
  EXPECT_EQ(racers[0].env->built() + racers[1].env->built(), 1);
  EXPECT_EQ(racers[0].env->prefix(), racers[1].env->prefix());
  EXPECT_EQ(racers[0].logs.Count("pip: ") == 0, racers[1].logs.Count("pip: ") != 0);
  EXPECT_EQ(RunIn(*racers[1].env, "import tinypkg_a; print(tinypkg_a.VALUE)"), "tinypkg_a-1.0");
}

// Two trainruns that both found the environment missing while a third held it
// shared (a run checking it) both wait for the exclusive lock. The one that does not
// get it must take the environment the other built, under the shared lock that the
// builder keeps for its run, instead of waiting for that lock to go.
TEST_F(PythonEnvTest, TwoWaitingToBuildOneEnvironmentBothGetIt) {
  std::string key;
  {
    TempDir scratch;
    PythonEnvRequest request = Request({"tinypkg_a"});
    request.cache_dir = scratch.path();
    Result<std::unique_ptr<PythonEnv>> env = PreparePythonEnv(request);
    ASSERT_TRUE(env.ok()) << env.status().message();
    key = (*env)->key();
  }
  fs::create_directories(cache_ / "envs");
  const std::string lock_path = cache_ / ("envs/" + key + ".lock");
  const int held = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(held, 0) << lock_path;
  ASSERT_EQ(flock(held, LOCK_SH), 0);

  // A regression waits forever: this turns it into a failure.
  CancelToken cancel, done;
  std::thread watchdog([&] {
    if (!done.WaitFor(std::chrono::seconds(120))) cancel.Cancel("the two waited for each other");
  });
  Racer racers[2];
  for (Racer& racer : racers) {
    StartRacer(&racer, &cancel);
    // Each is waiting before the next starts, and both before the lock goes.
    while (racer.logs.Count("is building it; waiting") == 0 && !cancel.canceled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  close(held);
  for (Racer& racer : racers) racer.thread.join();
  done.Cancel("finished");
  watchdog.join();
  ASSERT_TRUE(racers[0].status.ok()) << racers[0].status.message() << "\n" << racers[0].logs.All();
  ASSERT_TRUE(racers[1].status.ok()) << racers[1].status.message() << "\n" << racers[1].logs.All();
  EXPECT_EQ(racers[0].env->built() + racers[1].env->built(), 1);
  EXPECT_EQ(racers[0].env->prefix(), racers[1].env->prefix());
  EXPECT_EQ(RunIn(*racers[0].env, "import tinypkg_a; print(tinypkg_a.VALUE)"), "tinypkg_a-1.0");
}

TEST_F(PythonEnvTest, FailedInstallNamesThePackageAndLeavesNothing) {
  Result<std::unique_ptr<PythonEnv>> env =
      PreparePythonEnv(Request({"tinypkg_a", "tinypkg_missing==9.9"}));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidJob);
  EXPECT_NE(env.status().message().find("pip install exited with exit code 1"), std::string::npos)
      << env.status().message();
  EXPECT_NE(env.status().message().find("tinypkg_missing"), std::string::npos)
      << env.status().message();
  // Only the lock file is left: no environment, complete or not.
  for (const auto& entry : fs::directory_iterator(cache_ / "envs")) {
    EXPECT_EQ(entry.path().extension(), ".lock") << entry.path();
  }
}

TEST_F(PythonEnvTest, CondaPackagesWithoutCondaAreAnErrorNamingTheField) {
  PythonEnvRequest request = Request({});
  request.spec.conda_packages = {"numpy=1.24"};
  request.spec.conda_source = "condaDependencies";
  request.env.push_back("PATH=/usr/bin:/bin");  // the later entry wins: no conda here
  Result<std::unique_ptr<PythonEnv>> env = PreparePythonEnv(request);
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidJob);
  EXPECT_NE(env.status().message().find("environment.python.condaDependencies lists conda "
                                        "packages (numpy=1.24) but no conda is on PATH"),
            std::string::npos)
      << env.status().message();
}

TEST_F(PythonEnvTest, NothingToInstallIsNoEnvironment) {
  PythonEnvRequest request = Request({});
  request.spec.use_requirements_file = true;  // but the source has no requirements.txt
  Result<std::unique_ptr<PythonEnv>> env = PreparePythonEnv(request);
  ASSERT_TRUE(env.ok()) << env.status().message();
  EXPECT_FALSE(*env);
}

}  // namespace
}  // namespace trainrun
