// Digests and encodings the object stores need: SHA-256 and HMAC-SHA256 for request
// signing (AWS SigV4, Azure Shared Key), MD5 for transfer integrity, base64 and hex.
// All of it is OpenSSL underneath; nothing here is hand-rolled cryptography. Fnv1a64
// is the one hash that is not a digest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace trainrun {

// FNV-1a, 64 bits: a fast hash that is the same on every machine and run, for names
// (a cache entry's key, a port picked from a job id), never for integrity or secrets.
// Unlike the digests below it starts no OpenSSL, whose first use reads its
// configuration and costs a run about 1.5 MiB of resident code and a few ms.
uint64_t Fnv1a64(std::string_view data);

// Raw (binary) digests.
std::string Sha256(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);
std::string Md5(std::string_view data);

std::string HexEncode(std::string_view bytes);  // lowercase
// Returns false on an odd length or a non-hex character.
bool HexDecode(std::string_view hex, std::string* out);
std::string Base64Encode(std::string_view bytes);
// Returns false when `text` is not valid base64 (padding required).
bool Base64Decode(std::string_view text, std::string* out);

// An MD5 fed piece by piece, for files streamed through a transfer.
class Md5Stream {
 public:
  Md5Stream();
  ~Md5Stream();
  Md5Stream(const Md5Stream&) = delete;
  Md5Stream& operator=(const Md5Stream&) = delete;

  void Update(std::string_view data);
  // The raw digest; the stream may not be used afterwards.
  std::string Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The MD5 of `length` bytes of the file at `path` from `offset` (to the end when
// length is UINT64_MAX), read in small pieces. Errors name the file.
Result<std::string> Md5OfFile(const std::string& path, uint64_t offset = 0,
                              uint64_t length = UINT64_MAX);

}  // namespace trainrun
