// What the control plane needs beyond hashing.h: a file's SHA-256, random
// nonces and a comparison that does not leak where two secrets differ.
#pragma once

#include <string>
#include <string_view>

#include "base/hashing.h"
#include "base/status.h"

namespace trainrun {

// SHA-256 of a file's content as lowercase hex, read in chunks. Errors name the
// file.
Result<std::string> Sha256FileHex(const std::string& path);

// `n` bytes from the operating system's random generator.
std::string RandomBytes(size_t n);

// Compares in time that does not depend on where the inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace trainrun
