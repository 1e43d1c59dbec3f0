// Small file-system helpers that return Status instead of throwing, and write files
// so a reader never sees half of one (a temporary name in the same folder, then
// rename).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace trainrun {

// mkdir -p. Ok when it already exists as a directory.
Status MakeDirs(const std::string& path);

// `path` made absolute against the current directory, lexically normal; `path` as
// given when there is no current directory. Never throws.
std::string AbsolutePath(const std::string& path);

// Writes `content` to `path` atomically (temporary file, fsync-free rename).
Status WriteFileAtomic(const std::string& path, std::string_view content);

// Copies the regular file `from` to `to` atomically, keeping its permission bits and
// its holes (a sparse file stays sparse); uses copy_file_range so the bytes need not
// pass through user space. Creates the parent folders of `to`. Adds the file's size
// to *bytes when not null.
Status CopyFileAtomic(const std::string& from, const std::string& to, uint64_t* bytes = nullptr);

// The whole file.
Result<std::string> ReadFileToString(const std::string& path);

// A name for a temporary file beside `path` (same folder, hidden, random suffix),
// to write and then rename over `path`.
std::string TempNameFor(const std::string& path);

// Writes all of `data` to `fd`, retrying short writes and EINTR; errors name `name`.
Status WriteAll(int fd, const char* data, size_t size, const std::string& name);

// The entries of the folder `dir`, in the order the file system gives them. Unlike
// a range-for over std::filesystem::directory_iterator (whose ++ throws), an error
// while reading is a Status naming `dir`.
Result<std::vector<std::filesystem::directory_entry>> ListDirectory(
    const std::filesystem::path& dir);

// Whether `path` is `root` or lies inside it, after resolving both (symlinks
// included). False when either does not exist.
bool IsInside(const std::string& path, const std::string& root);

// Free bytes for unprivileged users on the file system holding `path`.
Result<uint64_t> FreeBytes(const std::string& path);

// "1.5 MB", "300 MB", "12 B": decimal units, as storage people and Azure ML quote them.
std::string FormatBytes(uint64_t bytes);

}  // namespace trainrun
