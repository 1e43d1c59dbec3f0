#include "runtime/store/store.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "base/redact.h"

namespace trainrun {

namespace fs = std::filesystem;

Status ValidateKey(const std::string& key) {
  if (key.empty()) return InvalidArgumentError("empty object key");
  if (key[0] == '/')
    return InvalidArgumentError(fmt::format("object key \"{}\" starts with '/'", key));
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string_view segment(key.data() + start, end - start);
    if ((segment.empty() && end != key.size()) || segment == "." || segment == "..") {
      return InvalidArgumentError(
          fmt::format("object key \"{}\" has an empty, '.' or '..' part", key));
    }
    start = end + 1;
  }
  return Status::Ok();
}

Result<std::string> KeyPrefixOf(const std::string& uri, std::string path) {
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.empty()) return path;
  Status valid = ValidateKey(path);
  if (!valid.ok())
    return InvalidArgumentError(fmt::format("{}: {}", RedactUri(uri), valid.message()));
  return path;
}

bool IsObjectStoreUri(const std::string& uri) {
  for (const char* scheme : {"az://", "s3://", "https://", "http://"}) {
    if (uri.rfind(scheme, 0) == 0) return true;
  }
  return false;
}

std::string DefaultHistoryUri() {
  const char* data_home = std::getenv("XDG_DATA_HOME");
  if (data_home != nullptr && data_home[0] == '/') {
    return std::string(data_home) + "/trainrun/history";
  }
  const char* home = std::getenv("HOME");
  std::string base = (home != nullptr && home[0] != '\0') ? home : "/tmp";
  return base + "/.local/share/trainrun/history";
}

}  // namespace trainrun
