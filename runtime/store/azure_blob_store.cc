#include "runtime/store/azure_blob_store.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/hashing.h"
#include "base/redact.h"
#include "runtime/store/xml.h"

namespace trainrun {
namespace {

constexpr int kListPageSize = 5000;

std::string BlockId(uint64_t index) {
  // Every block id of a blob must have the same length.
  return Base64Encode(fmt::format("trainrun-{:012d}", index));
}

}  // namespace

Result<AzureBlobLocation> ParseAzureUri(const std::string& uri) {
  if (uri.rfind("az://", 0) != 0)
    return InvalidArgumentError(fmt::format("{}: not an az:// URI", uri));
  std::string rest = uri.substr(5);
  if (rest.find('?') != std::string::npos) {
    return InvalidArgumentError(
        fmt::format("{}: put a SAS in AZURE_STORAGE_SAS_TOKEN, not in the URI", RedactUri(uri)));
  }
  AzureBlobLocation loc;
  size_t slash = rest.find('/');
  loc.account = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash + 1);
  slash = path.find('/');
  loc.container = path.substr(0, slash);
  if (loc.account.empty() || loc.container.empty()) {
    return InvalidArgumentError(fmt::format("{}: expected az://ACCOUNT/CONTAINER[/prefix]", uri));
  }
  TR_ASSIGN_OR_RETURN(loc.prefix,
                      KeyPrefixOf(uri, slash == std::string::npos ? "" : path.substr(slash + 1)));
  return loc;
}

Result<std::unique_ptr<AzureBlobStore>> AzureBlobStore::Open(const std::string& uri,
                                                             const EnvLookup& env,
                                                             ObjectStoreOptions options) {
  TR_ASSIGN_OR_RETURN(AzureBlobLocation loc, ParseAzureUri(uri));
  Result<AzureCredentials> creds = AzureCredentialsFor(loc.account, env);
  if (!creds.ok()) return creds.status().WithContext(uri);
  return std::unique_ptr<AzureBlobStore>(
      new AzureBlobStore(std::move(loc), std::move(creds).value(), options));
}

AzureBlobStore::AzureBlobStore(AzureBlobLocation location, AzureCredentials credentials,
                               ObjectStoreOptions options)
    : ObjectStoreBase(options),
      location_(std::move(location)),
      credentials_(std::move(credentials)) {}

std::string AzureBlobStore::Uri() const {
  std::string uri = fmt::format("az://{}/{}", location_.account, location_.container);
  return location_.prefix.empty() ? uri : uri + "/" + location_.prefix;
}

std::string AzureBlobStore::NameOf(const std::string& key) const {
  return location_.prefix.empty() ? key : location_.prefix + "/" + key;
}

std::string AzureBlobStore::What(const std::string& name) const {
  return fmt::format("az://{}/{}/{}", location_.account, location_.container, name);
}

Status AzureBlobStore::Error(const HttpResponse& response, const std::string& name) const {
  std::string code = ServiceErrorCode(response);
  if (code == "ContainerNotFound") {
    return NotFoundError(fmt::format(
        "az://{}/{}: container \"{}\" does not exist in account {} (at {}); create it first "
        "(az storage container create --name {})",
        location_.account, location_.container, location_.container, location_.account,
        credentials_.endpoint, location_.container));
  }
  std::string hint =
      credentials_.account_key.empty() && credentials_.sas.empty()
          ? "no credentials were found: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY "
            "or AZURE_STORAGE_SAS_TOKEN"
          : fmt::format("check the credentials from {} for account {}", credentials_.source,
                        location_.account);
  return ErrorFor(response, What(name), hint);
}

Result<HttpRequest> AzureBlobStore::Build(const std::string& method, const std::string& name,
                                          const std::string& query, HttpHeaders headers) const {
  HttpRequest request;
  request.method = method;
  std::string path_part = "/" + UriEncode(location_.container, false);
  if (!name.empty()) path_part += "/" + UriEncode(name, true);
  std::string full_query = query;
  if (!credentials_.sas.empty()) full_query += (full_query.empty() ? "" : "&") + credentials_.sas;
  request.url = credentials_.endpoint + path_part + (full_query.empty() ? "" : "?" + full_query);
  headers.emplace_back("x-ms-date", HttpDate(SystemClock()->WallNow()));
  headers.emplace_back("x-ms-version", kAzureApiVersion);
  request.headers = std::move(headers);
  return request;
}

namespace {

// Signing needs the body's size, so it happens once the body is in place.
Status SignShared(HttpRequest* request, const AzureCredentials& creds, const std::string& query) {
  if (creds.account_key.empty()) return Status::Ok();
  ParsedUrl url;
  ParseUrl(request->url, &url);
  std::string to_sign = SharedKeyStringToSign(request->method, request->headers,
                                              request->BodySize(), creds.account, url.path, query);
  TR_ASSIGN_OR_RETURN(std::string auth,
                      SharedKeyAuthorization(creds.account, creds.account_key, to_sign));
  request->headers.emplace_back("Authorization", std::move(auth));
  return Status::Ok();
}

}  // namespace

Status AzureBlobStore::PutObject(const std::string& name, std::string_view data,
                                 const std::string& md5) {
  return Put(name, data, md5, false);
}

Status AzureBlobStore::PutObjectIfAbsent(const std::string& name, std::string_view data,
                                         const std::string& md5) {
  return Put(name, data, md5, true);
}

Status AzureBlobStore::Put(const std::string& name, std::string_view data, const std::string& md5,
                           bool if_absent) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpHeaders headers = {{"x-ms-blob-type", "BlockBlob"}, {"Content-MD5", Base64Encode(md5)}};
    if (if_absent) headers.emplace_back("If-None-Match", "*");
    TR_ASSIGN_OR_RETURN(HttpRequest req, Build("PUT", name, "", std::move(headers)));
    req.body = std::string(data);
    req.on_bytes = ByteCounter();
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, ""));
    return req;
  });
  if (!r.ok()) return r.status();
  if (if_absent && (r->status == 412 || ServiceErrorCode(*r) == "BlobAlreadyExists")) {
    return AlreadyExistsError(fmt::format("{}: exists", What(name)));
  }
  return r->ok() ? Status::Ok() : Error(*r, name);
}

Result<std::string> AzureBlobStore::StartParts(const std::string&, uint64_t) {
  return std::string();
}

Result<std::string> AzureBlobStore::PutPart(const std::string& name, const std::string&,
                                            uint64_t index, PartBody* body,
                                            const std::string& md5) {
  const std::string id = BlockId(index);
  const std::string query = "comp=block&blockid=" + UriEncode(id, false);
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    TR_ASSIGN_OR_RETURN(HttpRequest req,
                        Build("PUT", name, query, {{"Content-MD5", Base64Encode(md5)}}));
    TR_ASSIGN_OR_RETURN(req.body, body->Take(md5));
    req.on_bytes = ByteCounter();
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, query));
    return req;
  });
  if (!r.ok()) return r.status();
  if (!r->ok()) return Error(*r, name);
  return id;
}

Status AzureBlobStore::CompleteParts(const std::string& name, const std::string&,
                                     const std::vector<std::string>& parts,
                                     const std::vector<std::string>&,
                                     const std::string& whole_md5) {
  std::string body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>";
  for (const std::string& id : parts) body += "<Latest>" + id + "</Latest>";
  body += "</BlockList>";
  const std::string query = "comp=blocklist";
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    TR_ASSIGN_OR_RETURN(HttpRequest req,
                        Build("PUT", name, query,
                              {{"Content-MD5", Base64Encode(Md5(body))},
                               {"x-ms-blob-content-md5", Base64Encode(whole_md5)}}));
    req.body = body;
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, query));
    return req;
  });
  if (!r.ok()) return r.status();
  return r->ok() ? Status::Ok() : Error(*r, name);
}

Result<RangeResult> AzureBlobStore::GetRange(const std::string& name, int fd, std::string* text,
                                             uint64_t offset, std::optional<uint64_t> length,
                                             const std::string& if_match) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    HttpHeaders headers;
    if (offset > 0 || length) headers.emplace_back("x-ms-range", RangeHeader(offset, length));
    if (!if_match.empty()) headers.emplace_back("If-Match", if_match);
    TR_ASSIGN_OR_RETURN(HttpRequest req, Build("GET", name, "", std::move(headers)));
    req.sink_fd = fd;
    req.sink_offset = offset;
    req.on_bytes = ByteCounter();
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, ""));
    return req;
  });
  if (!r.ok()) return r.status();
  TR_ASSIGN_OR_RETURN(std::optional<RangeResult> at_end,
                      RangeAtEndOrChanged(*r, What(name), [&] { return Head(name, name); }));
  if (at_end) return *at_end;
  if (!r->ok()) return Error(*r, name);
  TR_ASSIGN_OR_RETURN(RangeResult result, RangeFromResponse(&*r, fd, text, offset, What(name)));
  result.md5 = ContentMd5(*r, r->status == 200);
  return result;
}

Result<ObjectInfo> AzureBlobStore::Stat(const std::string& key) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  return Head(NameOf(key), key);
}

Result<ObjectInfo> AzureBlobStore::Head(const std::string& name, const std::string& key) {
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    TR_ASSIGN_OR_RETURN(HttpRequest req, Build("HEAD", name, "", {}));
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, ""));
    return req;
  });
  if (!r.ok()) return r.status();
  if (r->status == 404) return NotFoundError(fmt::format("{}: no such object", What(name)));
  if (!r->ok()) return Error(*r, name);
  ObjectInfo info = InfoFromHeaders(*r, key);
  info.md5 = ContentMd5(*r, true);
  return info;
}

Result<std::string> AzureBlobStore::ListPage(const std::string& prefix,
                                             const std::string& delimiter,
                                             const std::string& marker) {
  std::string query = fmt::format("comp=list&maxresults={}&restype=container", kListPageSize);
  if (!delimiter.empty()) query += "&delimiter=" + UriEncode(delimiter, false);
  if (!marker.empty()) query += "&marker=" + UriEncode(marker, false);
  if (!prefix.empty()) query += "&prefix=" + UriEncode(prefix, false);
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    TR_ASSIGN_OR_RETURN(HttpRequest req, Build("GET", "", query, {}));
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, query));
    return req;
  });
  if (!r.ok()) return r.status();
  if (!r->ok()) return Error(*r, prefix);
  return std::move(r->body);
}

Result<std::vector<ObjectInfo>> AzureBlobStore::List(const std::string& prefix) {
  const std::string root = location_.prefix.empty() ? "" : location_.prefix + "/";
  std::vector<ObjectInfo> out;
  std::string marker;
  do {
    TR_ASSIGN_OR_RETURN(std::string page, ListPage(root + prefix, "", marker));
    TR_ASSIGN_OR_RETURN(XmlElement xml, ParseXml(page, What(prefix)));
    if (const XmlElement* blobs = xml.Child("Blobs")) {
      for (const XmlElement* blob : blobs->Children("Blob")) {
        std::string name = blob->ChildText("Name");
        if (name.compare(0, root.size(), root) != 0) continue;
        ObjectInfo info;
        info.key = name.substr(root.size());
        if (const XmlElement* props = blob->Child("Properties")) {
          info.size = std::stoull("0" + props->ChildText("Content-Length"));
          // Listings give the ETag bare; headers (and If-Match) quote it.
          info.etag = props->ChildText("Etag");
          if (!info.etag.empty() && info.etag[0] != '"') info.etag = "\"" + info.etag + "\"";
          info.md5 = DecodeMd5(props->ChildText("Content-MD5"));
          ParseHttpDate(props->ChildText("Last-Modified"), &info.modified);
        }
        out.push_back(std::move(info));
      }
    }
    marker = xml.ChildText("NextMarker");
  } while (!marker.empty());
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Result<std::vector<std::string>> AzureBlobStore::ListChildren(const std::string& prefix) {
  const std::string root = (location_.prefix.empty() ? "" : location_.prefix + "/") + prefix;
  std::vector<std::string> out;
  std::string marker;
  do {
    TR_ASSIGN_OR_RETURN(std::string page, ListPage(root, "/", marker));
    TR_ASSIGN_OR_RETURN(XmlElement xml, ParseXml(page, What(prefix)));
    if (const XmlElement* blobs = xml.Child("Blobs")) {
      for (const XmlElement& child : blobs->children) {
        std::string name = child.ChildText("Name");
        if (name.size() <= root.size() || name.compare(0, root.size(), root) != 0) continue;
        if (child.name == "Blob" || child.name == "BlobPrefix")
          out.push_back(name.substr(root.size()));
      }
    }
    marker = xml.ChildText("NextMarker");
  } while (!marker.empty());
  std::sort(out.begin(), out.end());
  return out;
}

Status AzureBlobStore::Delete(const std::string& key) {
  TR_RETURN_IF_ERROR(ValidateKey(key));
  const std::string name = NameOf(key);
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    TR_ASSIGN_OR_RETURN(HttpRequest req, Build("DELETE", name, "", {}));
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, ""));
    return req;
  });
  if (!r.ok()) return r.status();
  if (r->ok() || r->status == 404) return Status::Ok();
  return Error(*r, name);
}

Status AzureBlobStore::CreateContainer() {
  const std::string query = "restype=container";
  Result<HttpResponse> r = Send([&]() -> Result<HttpRequest> {
    TR_ASSIGN_OR_RETURN(HttpRequest req, Build("PUT", "", query, {}));
    TR_RETURN_IF_ERROR(SignShared(&req, credentials_, query));
    return req;
  });
  if (!r.ok()) return r.status();
  if (r->ok() || r->status == 409) return Status::Ok();
  return Error(*r, "");
}

}  // namespace trainrun
