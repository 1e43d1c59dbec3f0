#include "runtime/store/https_store.h"

#include <fmt/format.h>

#include "base/redact.h"

namespace trainrun {

HttpsStore::HttpsStore(std::string base, std::string query, ObjectStoreOptions options)
    : ObjectStoreBase(options), base_(std::move(base)), query_(std::move(query)) {
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
}

std::string HttpsStore::Uri() const { return base_; }

std::string HttpsStore::UrlOf(const std::string& key) const {
  // Keys are the address's own (already encoded) path.
  return base_ + "/" + key + (query_.empty() ? "" : "?" + query_);
}

Status HttpsStore::ReadOnly(const std::string& name) const {
  return NotSupportedError(
      fmt::format("{}: {}:// locations are read-only; write run history to az://, s3:// or file://",
                  RedactUri(UrlOf(name)), base_.substr(0, base_.find(':'))));
}

Status HttpsStore::PutObject(const std::string& name, std::string_view, const std::string&) {
  return ReadOnly(name);
}
Result<std::string> HttpsStore::StartParts(const std::string& name, uint64_t) {
  return ReadOnly(name);
}
Result<std::string> HttpsStore::PutPart(const std::string& name, const std::string&, uint64_t,
                                        PartBody*, const std::string&) {
  return ReadOnly(name);
}
Status HttpsStore::CompleteParts(const std::string& name, const std::string&,
                                 const std::vector<std::string>&, const std::vector<std::string>&,
                                 const std::string&) {
  return ReadOnly(name);
}
Status HttpsStore::Delete(const std::string& key) { return ReadOnly(key); }

Result<std::vector<ObjectInfo>> HttpsStore::List(const std::string& prefix) {
  return NotSupportedError(fmt::format(
      "{}: an https:// address names one file; folders cannot be listed over plain HTTPS",
      RedactUri(UrlOf(prefix))));
}

Result<std::vector<std::string>> HttpsStore::ListChildren(const std::string& prefix) {
  return List(prefix).status();
}

Result<RangeResult> HttpsStore::GetRange(const std::string& name, int fd, std::string* text,
                                         uint64_t offset, std::optional<uint64_t> length,
                                         const std::string& if_match) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.url = UrlOf(name);
    if (offset > 0 || length) req.headers.emplace_back("Range", RangeHeader(offset, length));
    if (!if_match.empty()) req.headers.emplace_back("If-Match", if_match);
    req.sink_fd = fd;
    req.sink_offset = offset;
    req.on_bytes = ByteCounter();
    return req;
  });
  if (!r.ok()) return r.status();
  const std::string what = RedactUri(UrlOf(name));
  TR_ASSIGN_OR_RETURN(std::optional<RangeResult> at_end,
                      RangeAtEndOrChanged(*r, what, [&] { return Stat(name); }));
  if (at_end) return *at_end;
  if (!r->ok()) {
    return ErrorFor(*r, what, "check that the address (and its SAS or signature) is valid");
  }
  TR_ASSIGN_OR_RETURN(RangeResult result, RangeFromResponse(&*r, fd, text, offset, what));
  result.md5 = ContentMd5(*r, r->status == 200);
  return result;
}

Result<ObjectInfo> HttpsStore::Stat(const std::string& key) {
  auto head = [&](const std::string& method) {
    return Send([&]() -> Result<HttpRequest> {
      HttpRequest req;
      req.method = method;
      req.url = UrlOf(key);
      // A one-byte read, for addresses signed for GET only (pre-signed S3 URLs).
      if (method == "GET") req.headers.emplace_back("Range", "bytes=0-0");
      return req;
    });
  };
  Result<HttpResponse> r = head("HEAD");
  if (r.ok() && (r->status == 403 || r->status == 405)) r = head("GET");
  if (!r.ok()) return r.status();
  if (r->status == 404)
    return NotFoundError(fmt::format("{}: no such file", RedactUri(UrlOf(key))));
  if (r->status == 416) {  // a one-byte read of an empty file
    ObjectInfo info;
    info.key = key;
    return info;
  }
  if (!r->ok()) {
    return ErrorFor(*r, RedactUri(UrlOf(key)),
                    "check that the address (and its SAS or signature) is valid");
  }
  ObjectInfo info = InfoFromHeaders(*r, key);
  if (info.etag.empty()) info.etag = r->Header("last-modified") + "/" + std::to_string(info.size);
  info.md5 = ContentMd5(*r, r->status == 200);
  return info;
}

}  // namespace trainrun
