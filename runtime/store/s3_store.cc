#include "runtime/store/s3_store.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "base/hashing.h"
#include "base/redact.h"
#include "runtime/store/xml.h"

namespace trainrun {
namespace {

constexpr int kListPageSize = 1000;

std::string Unquote(std::string etag) {
  etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
  return etag;
}

// The MD5 an ETag stands for, when it is a plain one (not multipart, not KMS).
std::string Md5FromEtag(const std::string& etag) {
  std::string hex = Unquote(etag), raw;
  if (hex.size() != 32 || !HexDecode(hex, &raw)) return "";
  return raw;
}

std::string EmptyHash() { return HexEncode(Sha256("")); }

}  // namespace

Result<S3Location> ParseS3Uri(const std::string& uri) {
  if (uri.rfind("s3://", 0) != 0)
    return InvalidArgumentError(fmt::format("{}: not an s3:// URI", uri));
  std::string rest = uri.substr(5);
  S3Location loc;
  size_t slash = rest.find('/');
  loc.bucket = rest.substr(0, slash);
  if (loc.bucket.empty() || loc.bucket.find('?') != std::string::npos) {
    return InvalidArgumentError(fmt::format("{}: expected s3://BUCKET[/prefix]", RedactUri(uri)));
  }
  TR_ASSIGN_OR_RETURN(loc.prefix,
                      KeyPrefixOf(uri, slash == std::string::npos ? "" : rest.substr(slash + 1)));
  return loc;
}

Result<std::unique_ptr<S3Store>> S3Store::Open(const std::string& uri, const EnvLookup& env,
                                               ObjectStoreOptions options) {
  TR_ASSIGN_OR_RETURN(S3Location loc, ParseS3Uri(uri));
  S3Config config = S3ConfigFromEnv(env);
  if (!config.endpoint.empty()) {
    ParsedUrl url;
    if (!ParseUrl(config.endpoint, &url)) {
      return InvalidArgumentError(fmt::format(
          "{}: AWS_ENDPOINT_URL \"{}\" is not an http:// or https:// URL", uri, config.endpoint));
    }
  }
  if (config.credentials.access_key_id.empty() != config.credentials.secret_access_key.empty()) {
    return InvalidArgumentError(
        fmt::format("{}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together", uri));
  }
  return std::unique_ptr<S3Store>(new S3Store(std::move(loc), std::move(config), options));
}

S3Store::S3Store(S3Location location, S3Config config, ObjectStoreOptions options)
    : ObjectStoreBase(options), location_(std::move(location)), config_(std::move(config)) {
  // Custom endpoints and bucket names with dots (TLS) are addressed path-style.
  path_style_ = !config_.endpoint.empty() || location_.bucket.find('.') != std::string::npos;
}

std::string S3Store::Uri() const {
  std::string uri = "s3://" + location_.bucket;
  return location_.prefix.empty() ? uri : uri + "/" + location_.prefix;
}

std::string S3Store::NameOf(const std::string& key) const {
  return location_.prefix.empty() ? key : location_.prefix + "/" + key;
}

std::string S3Store::What(const std::string& name) const {
  return fmt::format("s3://{}/{}", location_.bucket, name);
}

std::string S3Store::UrlOf(const std::string& name, const std::string& query) const {
  std::string base;
  std::string path = name.empty() ? "/" : "/" + UriEncode(name, true);
  if (!config_.endpoint.empty()) {
    base = config_.endpoint + "/" + location_.bucket;
  } else if (path_style_) {
    base = fmt::format("https://s3.{}.amazonaws.com/{}", config_.region, location_.bucket);
  } else {
    base = fmt::format("https://{}.s3.{}.amazonaws.com", location_.bucket, config_.region);
  }
  if (name.empty() && path_style_) path = "";
  return base + path + (query.empty() ? "" : "?" + query);
}

HttpRequest S3Store::Signed(HttpRequest request, std::string_view payload_hash) const {
  SignS3Request(&request, config_, SystemClock()->WallNow(), payload_hash);
  return request;
}

Status S3Store::Error(const HttpResponse& response, const std::string& name) const {
  std::string code = ServiceErrorCode(response);
  if (code == "NoSuchBucket") {
    return NotFoundError(fmt::format("s3://{}: the bucket does not exist{}; create it first",
                                     location_.bucket,
                                     config_.endpoint.empty() ? "" : " at " + config_.endpoint));
  }
  std::string hint =
      config_.credentials.access_key_id.empty()
          ? "no credentials were found: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
          : fmt::format(
                "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY{} and the "
                "region ({})",
                config_.credentials.session_token.empty() ? "" : ", AWS_SESSION_TOKEN",
                config_.region);
  return ErrorFor(response, What(name), hint);
}

Status S3Store::PutObject(const std::string& name, std::string_view data, const std::string& md5) {
  return Put(name, data, md5, false);
}

Status S3Store::PutObjectIfAbsent(const std::string& name, std::string_view data,
                                  const std::string& md5) {
  return Put(name, data, md5, true);
}

Status S3Store::Put(const std::string& name, std::string_view data, const std::string& md5,
                    bool if_absent) {
  Result<HttpResponse> r = UnavailableError("no attempt made");
  // S3 answers 409 ConditionalRequestConflict to a conditional write that races
  // another one on the same key: ask again, and the loser then gets its 412.
  for (int conflict = 0; conflict < 5; ++conflict) {
    r = Send([&]() -> Result<HttpRequest> {
      HttpRequest req;
      req.method = "PUT";
      req.url = UrlOf(name, "");
      req.headers = {{"Content-MD5", Base64Encode(md5)}};
      if (if_absent) req.headers.emplace_back("If-None-Match", "*");
      req.body = std::string(data);
      req.on_bytes = ByteCounter();
      return Signed(std::move(req), kUnsignedPayload);
    });
    if (!r.ok() || r->status != 409 || !if_absent) break;
  }
  if (!r.ok()) return r.status();
  if (if_absent && r->status == 412) {
    return AlreadyExistsError(fmt::format("{}: exists", What(name)));
  }
  if (!r->ok()) return Error(*r, name);
  std::string echoed = Md5FromEtag(r->Header("etag"));
  if (!echoed.empty() && echoed != md5 && r->Header("x-amz-server-side-encryption") != "aws:kms") {
    return UnavailableError(fmt::format("{}: the store holds MD5 {}, we sent {}", What(name),
                                        HexEncode(echoed), HexEncode(md5)));
  }
  return Status::Ok();
}

Result<std::string> S3Store::StartParts(const std::string& name, uint64_t) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "POST";
    req.url = UrlOf(name, "uploads=");
    return Signed(std::move(req), EmptyHash());
  });
  if (!r.ok()) return r.status();
  if (!r->ok()) return Error(*r, name);
  TR_ASSIGN_OR_RETURN(XmlElement xml, ParseXml(r->body, What(name)));
  std::string id = xml.ChildText("UploadId");
  if (id.empty()) return IoError(fmt::format("{}: the service gave no UploadId", What(name)));
  return id;
}

Result<std::string> S3Store::PutPart(const std::string& name, const std::string& upload_id,
                                     uint64_t index, PartBody* body, const std::string& md5) {
  const std::string query =
      fmt::format("partNumber={}&uploadId={}", index + 1, UriEncode(upload_id, false));
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "PUT";
    req.url = UrlOf(name, query);
    req.headers = {{"Content-MD5", Base64Encode(md5)}};
    TR_ASSIGN_OR_RETURN(req.body, body->Take(md5));
    req.on_bytes = ByteCounter();
    return Signed(std::move(req), kUnsignedPayload);
  });
  if (!r.ok()) return r.status();
  if (!r->ok()) return Error(*r, name);
  std::string etag = r->Header("etag");
  std::string echoed = Md5FromEtag(etag);
  if (!echoed.empty() && echoed != md5) {
    return UnavailableError(fmt::format("{}: part {} arrived with MD5 {}, we sent {}", What(name),
                                        index + 1, HexEncode(echoed), HexEncode(md5)));
  }
  return etag;
}

Status S3Store::CompleteParts(const std::string& name, const std::string& upload_id,
                              const std::vector<std::string>& parts,
                              const std::vector<std::string>& part_md5s,
                              const std::string& whole_md5) {
  std::string body = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < parts.size(); ++i) {
    body += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1,
                        XmlEscape(parts[i]));
  }
  body += "</CompleteMultipartUpload>";
  const std::string query = "uploadId=" + UriEncode(upload_id, false);
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "POST";
    req.url = UrlOf(name, query);
    req.headers = {{"Content-MD5", Base64Encode(Md5(body))}};
    req.body = body;
    return Signed(std::move(req), HexEncode(Sha256(body)));
  });
  if (!r.ok()) return r.status();
  if (!r->ok()) return Error(*r, name);
  // S3 can answer 200 and put the error in the body.
  TR_ASSIGN_OR_RETURN(XmlElement xml, ParseXml(r->body, What(name)));
  if (xml.name == "Error") {
    return UnavailableError(
        fmt::format("{}: completing the upload failed ({})", What(name), xml.ChildText("Code")));
  }
  // The ETag is the whole MD5 (some servers) or MD5-of-part-MD5s "-N" (S3).
  std::string etag = Unquote(xml.ChildText("ETag"));
  std::string expected_composite;
  for (const std::string& m : part_md5s) expected_composite += m;
  expected_composite = fmt::format("{}-{}", HexEncode(Md5(expected_composite)), part_md5s.size());
  if (!etag.empty() && etag != expected_composite && etag != HexEncode(whole_md5) &&
      etag.find('-') == std::string::npos) {
    return UnavailableError(fmt::format("{}: the store holds MD5 {}, the file has {}", What(name),
                                        etag, HexEncode(whole_md5)));
  }
  if (!etag.empty() && etag.find('-') != std::string::npos && etag != expected_composite) {
    return UnavailableError(
        fmt::format("{}: the store's multipart ETag {} does not match the "
                    "parts we sent ({})",
                    What(name), etag, expected_composite));
  }
  return Status::Ok();
}

void S3Store::AbortParts(const std::string& name, const std::string& upload_id) {
  const std::string query = "uploadId=" + UriEncode(upload_id, false);
  Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "DELETE";
    req.url = UrlOf(name, query);
    return Signed(std::move(req), EmptyHash());
  })
      .status()
      .IgnoreError();
}

Result<RangeResult> S3Store::GetRange(const std::string& name, int fd, std::string* text,
                                      uint64_t offset, std::optional<uint64_t> length,
                                      const std::string& if_match) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.url = UrlOf(name, "");
    if (offset > 0 || length) req.headers.emplace_back("Range", RangeHeader(offset, length));
    if (!if_match.empty()) req.headers.emplace_back("If-Match", if_match);
    req.sink_fd = fd;
    req.sink_offset = offset;
    req.on_bytes = ByteCounter();
    return Signed(std::move(req), EmptyHash());
  });
  if (!r.ok()) return r.status();
  TR_ASSIGN_OR_RETURN(std::optional<RangeResult> at_end,
                      RangeAtEndOrChanged(*r, What(name), [&] { return Head(name, name); }));
  if (at_end) return *at_end;
  if (r->status == 404 && ServiceErrorCode(*r) != "NoSuchBucket") {
    return NotFoundError(fmt::format("{}: no such object", What(name)));
  }
  if (!r->ok()) return Error(*r, name);
  TR_ASSIGN_OR_RETURN(RangeResult result, RangeFromResponse(&*r, fd, text, offset, What(name)));
  if (r->Header("x-amz-server-side-encryption") != "aws:kms") result.md5 = Md5FromEtag(result.etag);
  return result;
}

Result<ObjectInfo> S3Store::Stat(const std::string& key) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  return Head(NameOf(key), key);
}

Result<ObjectInfo> S3Store::Head(const std::string& name, const std::string& key) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "HEAD";
    req.url = UrlOf(name, "");
    return Signed(std::move(req), EmptyHash());
  });
  if (!r.ok()) return r.status();
  if (r->status == 404) return NotFoundError(fmt::format("{}: no such object", What(name)));
  if (!r->ok()) return Error(*r, name);
  ObjectInfo info = InfoFromHeaders(*r, key);
  if (r->Header("x-amz-server-side-encryption") != "aws:kms") info.md5 = Md5FromEtag(info.etag);
  return info;
}

Status S3Store::ListAll(const std::string& prefix, const std::string& delimiter,
                        std::vector<ObjectInfo>* objects, std::vector<std::string>* prefixes) {
  std::string token;
  while (true) {
    std::string query = fmt::format("list-type=2&max-keys={}", kListPageSize);
    if (!token.empty()) query += "&continuation-token=" + UriEncode(token, false);
    if (!delimiter.empty()) query += "&delimiter=" + UriEncode(delimiter, false);
    if (!prefix.empty()) query += "&prefix=" + UriEncode(prefix, false);
    Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
      HttpRequest req;
      req.url = UrlOf("", query);
      return Signed(std::move(req), EmptyHash());
    });
    if (!r.ok()) return r.status();
    if (!r->ok()) return Error(*r, prefix);
    TR_ASSIGN_OR_RETURN(XmlElement xml, ParseXml(r->body, What(prefix)));
    for (const XmlElement* c : xml.Children("Contents")) {
      ObjectInfo info;
      info.key = c->ChildText("Key");
      info.size = std::stoull("0" + c->ChildText("Size"));
      info.etag = c->ChildText("ETag");
      info.md5 = Md5FromEtag(info.etag);
      ParseIso8601(c->ChildText("LastModified"), &info.modified);
      objects->push_back(std::move(info));
    }
    for (const XmlElement* p : xml.Children("CommonPrefixes"))
      prefixes->push_back(p->ChildText("Prefix"));
    token = xml.ChildText("NextContinuationToken");
    if (xml.ChildText("IsTruncated") != "true" || token.empty()) return Status::Ok();
  }
}

Result<std::vector<ObjectInfo>> S3Store::List(const std::string& prefix) {
  const std::string root = location_.prefix.empty() ? "" : location_.prefix + "/";
  std::vector<ObjectInfo> objects;
  std::vector<std::string> unused;
  TR_RETURN_IF_ERROR(ListAll(root + prefix, "", &objects, &unused));
  std::vector<ObjectInfo> out;
  for (ObjectInfo& o : objects) {
    if (o.key.compare(0, root.size(), root) != 0) continue;
    o.key = o.key.substr(root.size());
    out.push_back(std::move(o));
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Result<std::vector<std::string>> S3Store::ListChildren(const std::string& prefix) {
  const std::string root = (location_.prefix.empty() ? "" : location_.prefix + "/") + prefix;
  std::vector<ObjectInfo> objects;
  std::vector<std::string> prefixes;
  TR_RETURN_IF_ERROR(ListAll(root, "/", &objects, &prefixes));
  if (objects.empty() && prefixes.empty()) {
    // Some S3-compatible servers (s3rver) leave out common prefixes that hold no
    // object directly. Nothing at all is cheap to double-check: list everything
    // under the prefix and group it here.
    TR_RETURN_IF_ERROR(ListAll(root, "", &objects, &prefixes));
    std::set<std::string> groups;
    for (const ObjectInfo& o : objects) {
      size_t slash = o.key.find('/', root.size());
      if (slash != std::string::npos) groups.insert(o.key.substr(0, slash + 1));
    }
    objects.erase(std::remove_if(objects.begin(), objects.end(),
                                 [&](const ObjectInfo& o) {
                                   return o.key.find('/', root.size()) != std::string::npos;
                                 }),
                  objects.end());
    prefixes.assign(groups.begin(), groups.end());
  }
  std::vector<std::string> out;
  for (const ObjectInfo& o : objects) {
    if (o.key.size() > root.size() && o.key.compare(0, root.size(), root) == 0)
      out.push_back(o.key.substr(root.size()));
  }
  for (const std::string& p : prefixes) {
    if (p.size() > root.size() && p.compare(0, root.size(), root) == 0)
      out.push_back(p.substr(root.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status S3Store::Delete(const std::string& key) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  const std::string name = NameOf(key);
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "DELETE";
    req.url = UrlOf(name, "");
    return Signed(std::move(req), EmptyHash());
  });
  if (!r.ok()) return r.status();
  if (r->ok() || r->status == 404) return Status::Ok();
  return Error(*r, name);
}

Status S3Store::CreateBucket() {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpRequest req;
    req.method = "PUT";
    req.url = UrlOf("", "");
    return Signed(std::move(req), EmptyHash());
  });
  if (!r.ok()) return r.status();
  if (r->ok() || r->status == 409) return Status::Ok();
  return Error(*r, "");
}

}  // namespace trainrun
