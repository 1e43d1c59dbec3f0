// Helpers shared by the tests: temporary folders and files.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace trainrun::testing {

// A fresh folder under $TMPDIR, removed when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "trainrun-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// What this process has read with read() and pread() so far (/proc/self/io rchar,
// sockets' recv not included), less what reading /proc/self/io itself added: exact,
// so a byte read twice shows.
inline uint64_t BytesReadSoFar() {
  static uint64_t own = 0;  // read from /proc/self/io by earlier calls
  std::string text = ReadFile("/proc/self/io");
  size_t at = text.find("rchar: ");
  uint64_t rchar = at == std::string::npos ? 0 : std::stoull(text.substr(at + 7));
  uint64_t result = rchar - own;
  own += text.size();
  return result;
}

}  // namespace trainrun::testing
