#include "runtime/store.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "runtime/file_store.h"

namespace trainrun {

namespace fs = std::filesystem;

Status ValidateKey(const std::string& key) {
  if (key.empty()) return InvalidArgumentError("empty object key");
  if (key[0] == '/') return InvalidArgumentError(fmt::format("object key \"{}\" starts with '/'", key));
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string_view segment(key.data() + start, end - start);
    if ((segment.empty() && end != key.size()) || segment == "." || segment == "..") {
      return InvalidArgumentError(fmt::format("object key \"{}\" has an empty, '.' or '..' part", key));
    }
    start = end + 1;
  }
  return Status::Ok();
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri) {
  if (uri.empty()) return InvalidArgumentError("empty store URI");
  std::string path;
  size_t scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) {
    path = uri;
  } else {
    std::string scheme = uri.substr(0, scheme_end);
    if (scheme == "file") {
      path = uri.substr(scheme_end + 3);
      if (path.empty()) return InvalidArgumentError(fmt::format("{}: no path after file://", uri));
    } else if (scheme == "az" || scheme == "s3" || scheme == "https" || scheme == "http") {
      return NotSupportedError(fmt::format(
          "{}: {}:// stores are not supported yet; use a file:// URI or a local path", uri,
          scheme));
    } else {
      return InvalidArgumentError(fmt::format(
          "{}: unknown scheme \"{}\"; expected file://, az:// or s3://", uri, scheme));
    }
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) return ErrnoStatus(ec.value(), path);
  return std::unique_ptr<Store>(new FileStore(absolute.lexically_normal().string()));
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
