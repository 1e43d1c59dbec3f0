// The az:// and s3:// stores against real servers started here (Azurite, s3rver):
// every Store call, byte-for-byte round trips of a 300 MB file and of 2,000 small
// files, wrong credentials, and an unreachable server.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "base/hashing.h"
#include "runtime/run/history.h"
#include "runtime/store/store_factory.h"
#include "tests/stores/store_server.h"
#include "tests/test_util.h"

namespace trainrun::testing {
namespace {

namespace fs = std::filesystem;

// A file of `size` pseudo-random bytes (different for each seed), written in pieces.
void WriteRandomFile(const std::string& path, uint64_t size, uint64_t seed) {
  fs::create_directories(fs::path(path).parent_path());
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> block(1 << 17);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  uint64_t done = 0;
  while (done < size) {
    for (uint64_t& w : block) w = rng();
    size_t n = static_cast<size_t>(std::min<uint64_t>(block.size() * 8, size - done));
    ASSERT_EQ(write(fd, block.data(), n), static_cast<ssize_t>(n));
    done += n;
  }
  close(fd);
}

std::string FileMd5(const std::string& path) {
  Result<std::string> md5 = Md5OfFile(path);
  return md5.ok() ? HexEncode(*md5) : "unreadable: " + md5.status().message();
}

class ObjectStoreTest : public ::testing::TestWithParam<ServerKind> {
 protected:
  void SetUp() override {
    server_ = std::make_unique<StoreServer>(GetParam());
    std::string missing = server_->Missing();
    if (!missing.empty()) GTEST_SKIP() << "needs " << ServerName(GetParam()) << ": " << missing;
    ASSERT_EQ(server_->Start(), "");
    Status created = server_->CreateRoot("trainrun-test", &root_);
    ASSERT_TRUE(created.ok()) << created.message();
    auto store = OpenStore(root_ + "/prefix", server_->Lookup());
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
  }

  std::unique_ptr<StoreServer> server_;
  std::string root_;
  std::unique_ptr<Store> store_;
  TempDir dir_;
};

TEST_P(ObjectStoreTest, EveryCallOnSmallObjects) {
  EXPECT_EQ(store_->Uri(), root_ + "/prefix");
  ASSERT_TRUE(store_->PutBytes("a/b.txt", "hello world").ok());
  ASSERT_TRUE(store_->PutBytes("a/c/d.txt", "deep").ok());
  ASSERT_TRUE(store_->PutBytes("a/empty", "").ok());
  ASSERT_TRUE(store_->PutBytes("top name with spaces+plus.txt", "x").ok());

  EXPECT_EQ(*store_->GetBytes("a/b.txt"), "hello world");
  EXPECT_EQ(*store_->GetBytes("a/b.txt", 6), "world");
  EXPECT_EQ(*store_->GetBytes("a/b.txt", 2, 3), "llo");
  EXPECT_EQ(*store_->GetBytes("a/b.txt", 11), "");
  EXPECT_EQ(*store_->GetBytes("a/b.txt", 50), "");
  EXPECT_EQ(*store_->GetBytes("a/empty"), "");
  EXPECT_EQ(*store_->GetBytes("top name with spaces+plus.txt"), "x");
  EXPECT_EQ(store_->GetBytes("a/absent").status().code(), StatusCode::kNotFound);

  Result<ObjectInfo> info = store_->Stat("a/b.txt");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, 11u);
  EXPECT_FALSE(info->etag.empty());
  EXPECT_EQ(HexEncode(info->md5), HexEncode(Md5("hello world")));
  EXPECT_EQ(store_->Stat("a/absent").status().code(), StatusCode::kNotFound);

  Result<std::vector<ObjectInfo>> all = store_->List("");
  ASSERT_TRUE(all.ok()) << all.status().message();
  std::vector<std::string> keys;
  for (const ObjectInfo& o : *all) keys.push_back(o.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a/b.txt", "a/c/d.txt", "a/empty",
                                            "top name with spaces+plus.txt"}));
  EXPECT_EQ(store_->List("a/c/")->size(), 1u);
  EXPECT_EQ(*store_->ListChildren(""),
            (std::vector<std::string>{"a/", "top name with spaces+plus.txt"}));
  EXPECT_EQ(*store_->ListChildren("a/"), (std::vector<std::string>{"b.txt", "c/", "empty"}));
  EXPECT_TRUE(store_->ListChildren("nothing/")->empty());

  ASSERT_TRUE(store_->GetFile("a/c/d.txt", dir_ / "got/d.txt").ok());
  EXPECT_EQ(ReadFile(dir_ / "got/d.txt"), "deep");
  ASSERT_TRUE(store_->GetFile("a/empty", dir_ / "got/empty").ok());
  EXPECT_TRUE(fs::exists(dir_ / "got/empty"));
  EXPECT_EQ(fs::file_size(dir_ / "got/empty"), 0u);
  EXPECT_EQ(store_->GetFile("a/absent", dir_ / "got/absent").code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "got/absent"));

  ASSERT_TRUE(store_->Delete("a/b.txt").ok());
  ASSERT_TRUE(store_->Delete("a/b.txt").ok());  // gone already: fine
  EXPECT_EQ(store_->Stat("a/b.txt").status().code(), StatusCode::kNotFound);
}

TEST_P(ObjectStoreTest, LargeFileInPartsByteForByte) {
  const uint64_t size = 300ull * 1000 * 1000;
  WriteRandomFile(dir_ / "big.bin", size, 42);
  std::atomic<uint64_t> counted{0};
  store_->SetByteCounter(&counted);
  Status put = store_->PutFile("big/big.bin", dir_ / "big.bin");
  ASSERT_TRUE(put.ok()) << put.message();
  EXPECT_GE(counted.load(), size);
  Result<ObjectInfo> info = store_->Stat("big/big.bin");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, size);
  Status get = store_->GetFile("big/big.bin", dir_ / "back/big.bin");
  ASSERT_TRUE(get.ok()) << get.message();
  EXPECT_EQ(fs::file_size(dir_ / "back/big.bin"), size);
  EXPECT_EQ(FileMd5(dir_ / "back/big.bin"), FileMd5(dir_ / "big.bin"));
  // A range across a part boundary.
  Result<std::string> middle = store_->GetBytes("big/big.bin", kDefaultPartSize - 5, 10);
  ASSERT_TRUE(middle.ok()) << middle.status().message();
  std::string expected(10, '\0');
  int fd = open((dir_ / "big.bin").c_str(), O_RDONLY);
  ASSERT_EQ(pread(fd, expected.data(), 10, kDefaultPartSize - 5), 10);
  close(fd);
  EXPECT_EQ(*middle, expected);
}

// A multipart upload reads each byte of the file once (it used to read it three
// times: a whole-file MD5, a part MD5, then the part), with memory bounded: a store
// with room for two part buffers uploads three large files at once, and each object
// verifies (Azure keeps the whole MD5 the upload computed from the parts; S3's
// multipart ETag is checked against the parts' MD5s at completion).
TEST_P(ObjectStoreTest, AMultipartUploadReadsEachByteOnce) {
  const uint64_t size = 50ull * 1000 * 1000;  // 6 parts of 8 MiB
  WriteRandomFile(dir_ / "big.bin", size, 7);
  ASSERT_TRUE(store_->PutBytes("warm-up", "x").ok());  // connections, OpenSSL's config
  const uint64_t before = BytesReadSoFar();
  Status put = store_->PutFile("once/big.bin", dir_ / "big.bin");
  const uint64_t read = BytesReadSoFar() - before;
  ASSERT_TRUE(put.ok()) << put.message();
  EXPECT_EQ(read, size) << "bytes read from disk to upload a " << size << "-byte file";
  Result<ObjectInfo> info = store_->Stat("once/big.bin");
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, size);
  if (GetParam() == ServerKind::kAzurite) {
    EXPECT_EQ(HexEncode(info->md5), FileMd5(dir_ / "big.bin"));
  }
  ASSERT_TRUE(store_->GetFile("once/big.bin", dir_ / "back.bin").ok());
  EXPECT_EQ(FileMd5(dir_ / "back.bin"), FileMd5(dir_ / "big.bin"));

  ObjectStoreOptions tight;
  tight.upload_buffer_bytes = 2 * kDefaultPartSize;
  Result<std::unique_ptr<Store>> small = Status();
  if (GetParam() == ServerKind::kAzurite) {
    auto s = AzureBlobStore::Open(root_ + "/tight", server_->Lookup(), tight);
    ASSERT_TRUE(s.ok());
    small = std::unique_ptr<Store>(std::move(s).value());
  } else {
    auto s = S3Store::Open(root_ + "/tight", server_->Lookup(), tight);
    ASSERT_TRUE(s.ok());
    small = std::unique_ptr<Store>(std::move(s).value());
  }
  const uint64_t third = 20ull * 1000 * 1000;
  std::vector<TransferItem> items;
  for (int i = 0; i < 3; ++i) {
    std::string local = dir_ / ("three/" + std::to_string(i));
    WriteRandomFile(local, third, 100 + i);
    items.push_back({local, "three/" + std::to_string(i), third});
  }
  UploadReport report = UploadItems(small->get(), items, 3, {});
  ASSERT_TRUE(report.errors.empty()) << report.errors.front();
  for (const TransferItem& item : items) {
    ASSERT_TRUE((*small)->GetFile(item.key, dir_ / "back3").ok()) << item.key;
    EXPECT_EQ(FileMd5(dir_ / "back3"), FileMd5(item.local_path)) << item.key;
  }
}

// Ten writers (each its own store, as ten processes would be) create one key at once:
// exactly one succeeds, the others are told it exists, the key holds the winner's
// bytes, and no probe or claim object is left. Azurite honours If-None-Match: *;
// s3rver ignores it, so there the claim objects decide.
TEST_P(ObjectStoreTest, CreateBytesIsExclusive) {
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < 10; ++i) {
    auto store = OpenStore(root_ + "/prefix", server_->Lookup());
    ASSERT_TRUE(store.ok()) << store.status().message();
    stores.push_back(std::move(store).value());
  }
  // s3rver removes a folder once a delete leaves it empty, racing a put into it (and
  // can crash): an object that stays keeps the claims' folder.
  const bool keep_folder = GetParam() == ServerKind::kS3rver;
  if (keep_folder) {
    ASSERT_TRUE(store_->PutBytes("claim/keep", "").ok());
  }
  std::vector<Status> results(stores.size());
  std::vector<std::thread> writers;
  for (size_t i = 0; i < stores.size(); ++i) {
    writers.emplace_back([&, i] {
      results[i] = stores[i]->CreateBytes("claim/run.json", "writer " + std::to_string(i));
    });
  }
  for (std::thread& t : writers) t.join();
  int winners = 0;
  std::string winner;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      ++winners;
      winner = "writer " + std::to_string(i);
      continue;
    }
    EXPECT_EQ(results[i].code(), StatusCode::kAlreadyExists) << results[i].message();
    EXPECT_NE(results[i].message().find(root_ + "/prefix/claim/run.json"), std::string::npos)
        << results[i].message();
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(*store_->GetBytes("claim/run.json"), winner);
  Status late = store_->CreateBytes("claim/run.json", "late");
  EXPECT_EQ(late.code(), StatusCode::kAlreadyExists) << late.message();
  EXPECT_EQ(*store_->GetBytes("claim/run.json"), winner);
  Result<std::vector<ObjectInfo>> left = store_->List("claim/");
  ASSERT_TRUE(left.ok()) << left.status().message();
  std::vector<std::string> keys;
  for (const ObjectInfo& o : *left) {
    if (!keep_folder || o.key != "claim/keep") keys.push_back(o.key);
  }
  EXPECT_EQ(keys, std::vector<std::string>{"claim/run.json"});
}

TEST_P(ObjectStoreTest, TwoThousandSmallFilesByteForByte) {
  std::vector<TransferItem> items;
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string rel = "d" + std::to_string(i % 20) + "/f" + std::to_string(i) + ".bin";
    uint64_t size = rng() % 16384;
    WriteRandomFile(dir_ / ("many/" + rel), size, static_cast<uint64_t>(i));
    items.push_back({dir_ / ("many/" + rel), "many/" + rel, size});
  }
  UploadReport report = UploadItems(store_.get(), items, kDefaultUploadParallelism, {});
  ASSERT_TRUE(report.errors.empty()) << report.errors.front();
  EXPECT_EQ(report.files, 2000u);
  Result<std::vector<ObjectInfo>> listed = store_->List("many/");
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 2000u);
  std::atomic<size_t> next{0};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < items.size(); i = next++) {
        std::string back = dir_ / ("back/" + std::to_string(i));
        Status s = store_->GetFile(items[i].key, back);
        if (!s.ok() || ReadFile(back) != ReadFile(items[i].local_path)) ++mismatches;
      }
    });
  }
  for (std::thread& t : pool) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_P(ObjectStoreTest, WrongCredentialsGiveAClearErrorWithoutTheSecret) {
  auto store = OpenStore(root_ + "/prefix", server_->Lookup(/*wrong_secret=*/true));
  ASSERT_TRUE(store.ok()) << store.status().message();
  Status put = (*store)->PutBytes("x.txt", "data");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.code(), StatusCode::kPermissionDenied) << put.message();
  EXPECT_NE(put.message().find("access denied"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find(root_), std::string::npos) << put.message();
  EXPECT_EQ(put.message().find(StoreServer::WrongKey()), std::string::npos) << put.message();
  EXPECT_EQ(put.message().find(StoreServer::WrongKey().substr(0, 12)), std::string::npos);
  Status list = (*store)->List("").status();
  EXPECT_EQ(list.code(), StatusCode::kPermissionDenied) << list.message();
}

TEST_P(ObjectStoreTest, UnreachableServerIsUnavailable) {
  server_->Stop();
  ObjectStoreOptions fast;
  fast.retry.backoff.initial = std::chrono::milliseconds(1);
  fast.retry.max_attempts = 3;
  Result<std::unique_ptr<Store>> store = Status();
  if (GetParam() == ServerKind::kAzurite) {
    auto s = AzureBlobStore::Open(root_, server_->Lookup(), fast);
    ASSERT_TRUE(s.ok());
    store = std::unique_ptr<Store>(std::move(s).value());
  } else {
    auto s = S3Store::Open(root_, server_->Lookup(), fast);
    ASSERT_TRUE(s.ok());
    store = std::unique_ptr<Store>(std::move(s).value());
  }
  Status put = (*store)->PutBytes("x", "y");
  EXPECT_EQ(put.code(), StatusCode::kUnavailable) << put.message();
  EXPECT_NE(put.message().find("127.0.0.1"), std::string::npos) << put.message();
}

// A SAS that trainrun makes (as it does for rclone mounts) is accepted by Azurite,
// and a store that authenticates with a SAS instead of the key works end to end.
TEST(AzuriteSasTest, ContainerSasGrantsWhatItSays) {
  StoreServer server(ServerKind::kAzurite);
  if (!server.Missing().empty()) GTEST_SKIP() << "needs Azurite: " << server.Missing();
  ASSERT_EQ(server.Start(), "");
  std::string root;
  ASSERT_TRUE(server.CreateRoot("sas-test", &root).ok());
  WallTime expiry = SystemClock()->WallNow() + std::chrono::hours(1);
  Result<std::string> sas = ContainerSas("devstoreaccount1", kAzuriteKeyForTests, "sas-test",
                                         "racwdl", expiry, /*allow_http=*/true);
  ASSERT_TRUE(sas.ok());
  std::map<std::string, std::string> vars = {
      {"AZURE_STORAGE_SAS_TOKEN", *sas},
      {"AZURE_STORAGE_BLOB_ENDPOINT", server.endpoint() + "/devstoreaccount1"}};
  EnvLookup env = [&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  auto store = OpenStore(root, env);
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE((*store)->PutBytes("k/v.txt", "via sas").ok());
  EXPECT_EQ(*(*store)->GetBytes("k/v.txt"), "via sas");
  EXPECT_EQ((*store)->List("k/")->size(), 1u);

  // Read-only: writing is refused, and the message carries no signature.
  Result<std::string> ro =
      ContainerSas("devstoreaccount1", kAzuriteKeyForTests, "sas-test", "rl", expiry, true);
  vars["AZURE_STORAGE_SAS_TOKEN"] = *ro;
  auto reader = OpenStore(root, env);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(*(*reader)->GetBytes("k/v.txt"), "via sas");
  Status denied = (*reader)->PutBytes("k/w.txt", "no");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied) << denied.message();
  EXPECT_EQ(denied.message().find("sig="), std::string::npos) << denied.message();
}

INSTANTIATE_TEST_SUITE_P(Servers, ObjectStoreTest,
                         ::testing::Values(ServerKind::kAzurite, ServerKind::kS3rver),
                         [](const auto& info) { return std::string(ServerName(info.param)); });

}  // namespace
}  // namespace trainrun::testing
