// The per-boot topology cache: saved on the first load, used on the next (NVML not
// asked again), rebuilt when the visible devices, the /dev/nvidia* set or the boot
// change, and never in the way when it cannot be used.
#include "gpu/topology_cache.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainrun::gpu::testing {
namespace {

using ::trainrun::testing::TempDir;
using ::trainrun::testing::WriteFile;

class TopologyCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "dev");
    WriteFile(dir_ / "boot_id", "boot-a\n");
    WriteFile(dir_ / "two", "0000:34:00.0 GPU-one Fake A\n0000:36:00.0 GPU-two Fake B\n");
    WriteFile(dir_ / "one", "0000:34:00.0 GPU-one Fake A\n");
    setenv("FAKE_NVML_DEVICES", (dir_ / "two").c_str(), 1);
    unsetenv("FAKE_NVML_INIT_ERROR");
    options_.dir = dir_ / "cache";
    options_.boot_id_file = dir_ / "boot_id";
    options_.dev_dir = dir_ / "dev";
    options_.nvml_library = FAKE_NVML_LIBRARY;
  }
  void TearDown() override { unsetenv("FAKE_NVML_DEVICES"); }

  CachedTopology Load() {
    Result<CachedTopology> loaded = LoadThisMachineCached(options_);
    EXPECT_TRUE(loaded.ok()) << loaded.status().message();
    return loaded.ok() ? std::move(loaded).value() : CachedTopology{};
  }

  TempDir dir_;
  TopologyCacheOptions options_;
};

TEST_F(TopologyCacheTest, TheSecondLoadComesFromTheCacheWithoutAskingNvml) {
  CachedTopology first = Load();
  EXPECT_FALSE(first.from_cache);
  EXPECT_NE(first.note.find("saved to the per-boot cache " + options_.dir + "/boot-a/"),
            std::string::npos)
      << first.note;
  ASSERT_TRUE(first.nvml.has_value());
  EXPECT_EQ(first.nvml->gpus.size(), 2u);

  // NVML would now answer one GPU: the cached answer (two) shows it was not asked.
  setenv("FAKE_NVML_DEVICES", (dir_ / "one").c_str(), 1);
  CachedTopology second = Load();
  EXPECT_TRUE(second.from_cache);
  EXPECT_NE(second.note.find("from the per-boot cache"), std::string::npos) << second.note;
  ASSERT_TRUE(second.nvml.has_value());
  ASSERT_EQ(second.nvml->gpus.size(), 2u);
  EXPECT_EQ(second.nvml->gpus[1].uuid, "GPU-two");
  EXPECT_EQ(second.nvml->gpus[1].name, "Fake B");
  EXPECT_TRUE(second.topology.this_machine);
  EXPECT_EQ(second.topology.source, "this machine");
  EXPECT_EQ(second.topology.cpus, first.topology.cpus);
  EXPECT_EQ(second.topology.core_count, first.topology.core_count);
  EXPECT_EQ(second.topology.numa_nodes.size(), first.topology.numa_nodes.size());
  EXPECT_EQ(second.topology.notes, first.topology.notes);
}

TEST_F(TopologyCacheTest, AnotherCudaVisibleDevicesIsRebuilt) {
  Load();
  setenv("FAKE_NVML_DEVICES", (dir_ / "one").c_str(), 1);
  options_.cuda_visible_devices = "0";
  CachedTopology changed = Load();
  EXPECT_FALSE(changed.from_cache) << changed.note;
  ASSERT_TRUE(changed.nvml.has_value());
  EXPECT_EQ(changed.nvml->gpus.size(), 1u);
  EXPECT_TRUE(Load().from_cache);  // and that entry is used next time
  options_.cuda_visible_devices.reset();
  EXPECT_TRUE(Load().from_cache);  // the first entry is still there
}

TEST_F(TopologyCacheTest, AnotherNvidiaVisibleDevicesOrDeviceSetIsRebuilt) {
  Load();
  options_.nvidia_visible_devices = "all";
  EXPECT_FALSE(Load().from_cache);
  WriteFile(dir_ / "dev/nvidia0", "");
  EXPECT_FALSE(Load().from_cache);
  EXPECT_TRUE(Load().from_cache);
}

TEST_F(TopologyCacheTest, ARebootStartsAfreshAndRemovesTheOldBoot) {
  Load();
  ASSERT_TRUE(std::filesystem::exists(options_.dir + "/boot-a"));
  WriteFile(dir_ / "boot_id", "boot-b\n");
  CachedTopology after = Load();
  EXPECT_FALSE(after.from_cache);
  EXPECT_TRUE(std::filesystem::exists(options_.dir + "/boot-b"));
  EXPECT_FALSE(std::filesystem::exists(options_.dir + "/boot-a"));
}

TEST_F(TopologyCacheTest, ADamagedEntryIsReadAgainAndRewritten) {
  Load();
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir + "/boot-a")) {
    WriteFile(entry.path().string(), "not what was written");
  }
  CachedTopology again = Load();
  EXPECT_FALSE(again.from_cache);
  EXPECT_FALSE(again.topology.cpus.empty());
  EXPECT_TRUE(Load().from_cache);
}

TEST_F(TopologyCacheTest, WithoutADirectoryOrBootIdTheMachineIsRead) {
  options_.dir.clear();
  CachedTopology off = Load();
  EXPECT_FALSE(off.from_cache);
  EXPECT_NE(off.note.find("topology cache not used"), std::string::npos) << off.note;
  EXPECT_FALSE(off.topology.cpus.empty());

  options_.dir = dir_ / "cache";
  options_.boot_id_file = dir_ / "no-such-file";
  CachedTopology no_boot = Load();
  EXPECT_NE(no_boot.note.find("no boot id"), std::string::npos) << no_boot.note;
  EXPECT_FALSE(std::filesystem::exists(options_.dir));

  // A directory that cannot be made (under a file) is a note, not an error.
  options_.boot_id_file = dir_ / "boot_id";
  options_.dir = dir_ / "boot_id/cache";
  CachedTopology unwritable = Load();
  EXPECT_NE(unwritable.note.find("topology cache not used"), std::string::npos) << unwritable.note;
}

TEST_F(TopologyCacheTest, WithoutNvmlNoGpuListIsKept) {
  options_.use_nvml = false;
  EXPECT_FALSE(Load().nvml.has_value());
  CachedTopology second = Load();
  EXPECT_TRUE(second.from_cache);
  EXPECT_FALSE(second.nvml.has_value());
}

TEST(TopologyCacheDirTest, VariableThenRootThenXdgRuntimeDir) {
  EXPECT_EQ(TopologyCacheDir(std::string("/tmp/c"), std::nullopt, 1000), "/tmp/c");
  EXPECT_EQ(TopologyCacheDir(std::string("off"), std::nullopt, 0), "");
  EXPECT_EQ(TopologyCacheDir(std::nullopt, std::string("/run/user/1000"), 0), "/run/trainrun");
  EXPECT_EQ(TopologyCacheDir(std::nullopt, std::string("/run/user/1000"), 1000),
            "/run/user/1000/trainrun");
  EXPECT_EQ(TopologyCacheDir(std::nullopt, std::nullopt, 1000), "");
}

}  // namespace
}  // namespace trainrun::gpu::testing
