// environment.python of the job file (runtime/run/python_env_spec.h), read through
// ParseJobText as a job file is.
#include "runtime/run/python_env_spec.h"

#include <gtest/gtest.h>

#include "runtime/run/job_config.h"
#include "tests/test_util.h"

namespace trainrun {
namespace {

using testing::TempDir;
using testing::WriteFile;
using Strings = std::vector<std::string>;

class PythonSpecTest : public ::testing::Test {
 protected:
  PythonSpecTest() { WriteFile(dir_ / "train.py", "print('hi')\n"); }
  Result<JobConfig> Parse(const std::string& python) {
    return ParseJobText(R"({"script": "train.py", "environment": {"python": )" + python + "}}",
                        dir_ / "job.json");
  }
  TempDir dir_;
};

TEST_F(PythonSpecTest, InlineCondaDependenciesAsAzureMlWritesThem) {
  Result<JobConfig> job = Parse(R"({
    "userManagedDependencies": false,
    "interpreterPath": "python",
    "condaDependencies": {"name": "project_environment",
                          "dependencies": ["python=3.11.2", "pip", "xz",
                                           {"pip": ["tinypkg_a==1.0", "--find-links /w"]}],
                          "channels": ["conda-forge"]}})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  const PythonEnvSpec& spec = job->python;
  EXPECT_EQ(spec.user_managed_dependencies, false);
  EXPECT_TRUE(spec.use_requirements_file);
  EXPECT_EQ(spec.python_version, "3.11.2");
  EXPECT_EQ(spec.conda_packages, Strings{"xz"});  // python and pip are not conda's to add
  EXPECT_EQ(spec.channels, Strings{"conda-forge"});
  EXPECT_EQ(spec.pip, (Strings{"tinypkg_a==1.0", "--find-links /w"}));
  EXPECT_EQ(spec.conda_source, "condaDependencies");
  EXPECT_EQ(job->interpreter_path, "python");
  EXPECT_TRUE(spec.wanted());
  ASSERT_EQ(spec.notes.size(), 1u);
  EXPECT_NE(spec.notes[0].find("/environment/python/condaDependencies/name: ignored"),
            std::string::npos);
}

TEST_F(PythonSpecTest, CondaFileIsYamlInTheSourceDirectory) {
  WriteFile(dir_ / "env/conda.yml",
            "name: demo\nchannels:\n  - defaults\ndependencies:\n  - python=3.11\n"
            "  - pip:\n    - tinypkg_b\n");
  Result<JobConfig> job = Parse(R"({"condaDependenciesFile": "env/conda.yml"})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->python.pip, Strings{"tinypkg_b"});
  EXPECT_EQ(job->python.python_version, "3.11");
  EXPECT_EQ(job->python.conda_source, "condaDependenciesFile (env/conda.yml)");
  // Not written out: Azure ML's default (false) for the packages, but requirements.txt
  // only when asked.
  EXPECT_TRUE(job->python.wanted());
  EXPECT_FALSE(job->python.use_requirements_file);
}

TEST_F(PythonSpecTest, CondaYamlAsAStringAndEstimatorLists) {
  Result<JobConfig> job = Parse(R"({
    "condaDependencies": "dependencies:\n  - pip:\n    - tinypkg_a\n",
    "pipPackages": ["tinypkg_b"], "condaPackages": ["python=3.11", "xz"]})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->python.pip, (Strings{"tinypkg_a", "tinypkg_b"}));
  EXPECT_EQ(job->python.conda_packages, Strings{"xz"});
  EXPECT_EQ(job->python.python_version, "3.11");
}

// A run configuration saved by Azure ML lists azureml-defaults: the real SDK would
// take the script's metrics to the Azure ML service, so it is left out, with a note.
TEST_F(PythonSpecTest, AzureMlSdkPackagesAreLeftOut) {
  Result<JobConfig> job = Parse(R"({"userManagedDependencies": false,
    "condaDependencies": {"dependencies": ["python=3.11",
      {"pip": ["azureml-defaults", "AzureML_Core==1.50", "tinypkg_a"]}]},
    "pipPackages": ["azureml-sdk>=1.0", "azureml-mlflow"]})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->python.pip, (Strings{"tinypkg_a", "azureml-mlflow"}));
  ASSERT_EQ(job->python.notes.size(), 1u);
  EXPECT_NE(job->python.notes[0].find("azureml-defaults, AzureML_Core==1.50, azureml-sdk>=1.0"),
            std::string::npos)
      << job->python.notes[0];
  EXPECT_NE(job->python.notes[0].find("/environment/python"), std::string::npos);
}

TEST_F(PythonSpecTest, UserManagedDependenciesInstallNothing) {
  Result<JobConfig> job =
      Parse(R"({"userManagedDependencies": true, "pipPackages": ["tinypkg_a"]})");
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_FALSE(job->python.wanted());
  ASSERT_EQ(job->python.notes.size(), 1u);
  EXPECT_NE(job->python.notes[0].find("packages listed are not installed"), std::string::npos);
  // And a job without the section wants no environment, requirements.txt or not.
  WriteFile(dir_ / "requirements.txt", "tinypkg_a\n");
  Result<JobConfig> plain = Parse(R"({"interpreterPath": "/usr/bin/python3"})");
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_FALSE(plain->python.wanted());
}

TEST_F(PythonSpecTest, ErrorsNameTheField) {
  auto error = [&](const std::string& python) {
    Result<JobConfig> job = Parse(python);
    EXPECT_FALSE(job.ok());
    if (!job.ok()) {
      EXPECT_EQ(job.status().code(), StatusCode::kInvalidJob);
    }
    return job.ok() ? std::string() : job.status().message();
  };
  EXPECT_NE(error(R"({"condaDependency": {}})")
                .find("/environment/python/condaDependency: unknown field; did you mean "
                      "\"condaDependencies\"?"),
            std::string::npos);
  EXPECT_NE(error(R"({"condaDependenciesFile": "missing.yml"})")
                .find("/environment/python/condaDependenciesFile: \"missing.yml\" is not a file"),
            std::string::npos);
  WriteFile(dir_ / "bad.yml", "dependencies: [unclosed\n");
  EXPECT_NE(error(R"({"condaDependenciesFile": "bad.yml"})").find("not valid YAML"),
            std::string::npos);
  EXPECT_NE(error(R"({"condaDependencies": {"dependencies": ["xz", 3]}})")
                .find("/environment/python/condaDependencies/dependencies/1: must be a conda "
                      "package"),
            std::string::npos);
  EXPECT_NE(error(R"({"pipPackages": "tinypkg_a"})")
                .find("/environment/python/pipPackages: must be an array of strings"),
            std::string::npos);
  EXPECT_NE(
      error(R"({"condaDependencies": {}, "condaDependenciesFile": "x.yml"})").find("not both"),
      std::string::npos);
  EXPECT_NE(error(R"({"userManagedDependencies": "no"})")
                .find("/environment/python/userManagedDependencies: must be true or false"),
            std::string::npos);
}

}  // namespace
}  // namespace trainrun
