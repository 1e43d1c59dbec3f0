// What the fuzz targets assert: a failed check aborts, which libFuzzer reports as a
// crash with the input that caused it.
#pragma once

#include <cstdlib>
#include <string>

namespace trainrun::fuzz {

inline void Check(bool ok) {
  if (!ok) std::abort();
}

// No byte a terminal acts on: what FieldReader::Text fields come out as.
inline void CheckEscaped(const std::string& text) {
  for (char c : text) Check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
}

}  // namespace trainrun::fuzz
