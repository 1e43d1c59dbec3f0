#include "runtime/store/store_factory.h"

#include <filesystem>

#include <fmt/format.h>

#include "base/redact.h"
#include "runtime/store/azure_blob_store.h"
#include "runtime/store/file_store.h"
#include "runtime/store/https_store.h"
#include "runtime/store/s3_store.h"
#include "runtime/store/store_libs.h"

namespace trainrun {

namespace fs = std::filesystem;

// Object stores and https:// need libcurl (and the stores' XML answers libxml2), which
// the portable build loads only now: a missing one is an error naming `uri` here
// rather than at the first request.
Status CheckStoreLibraries(const std::string& uri, bool xml) {
  Result<const CurlApi*> curl = Curl();
  if (!curl.ok())
    return NotSupportedError(fmt::format("{}: {}", RedactUri(uri), curl.status().message()));
  if (!xml) return Status::Ok();
  Result<const XmlApi*> parser = Xml();
  if (!parser.ok()) {
    return NotSupportedError(fmt::format("{}: {}", RedactUri(uri), parser.status().message()));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri, const EnvLookup& env) {
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
    } else if (scheme == "az") {
      TR_RETURN_IF_ERROR(CheckStoreLibraries(uri, /*xml=*/true));
      TR_ASSIGN_OR_RETURN(auto store, AzureBlobStore::Open(uri, env));
      return std::unique_ptr<Store>(std::move(store));
    } else if (scheme == "s3") {
      TR_RETURN_IF_ERROR(CheckStoreLibraries(uri, /*xml=*/true));
      TR_ASSIGN_OR_RETURN(auto store, S3Store::Open(uri, env));
      return std::unique_ptr<Store>(std::move(store));
    } else if (scheme == "https" || scheme == "http") {
      TR_RETURN_IF_ERROR(CheckStoreLibraries(uri, /*xml=*/false));
      ParsedUrl url;
      if (!ParseUrl(uri, &url)) {
        return InvalidArgumentError(fmt::format("{}: not a valid URL", RedactUri(uri)));
      }
      return std::unique_ptr<Store>(
          new HttpsStore(url.scheme + "://" + url.host + url.path, url.query));
    } else {
      return InvalidArgumentError(
          fmt::format("{}: unknown scheme \"{}\"; expected file://, az://, s3:// or https://",
                      RedactUri(uri), scheme));
    }
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) return ErrnoStatus(ec.value(), path);
  return std::unique_ptr<Store>(new FileStore(absolute.lexically_normal().string()));
}

Result<StoreObject> OpenStoreObject(const std::string& uri, const EnvLookup& env) {
  StoreObject out;
  if (uri.rfind("az://", 0) == 0) {
    TR_ASSIGN_OR_RETURN(AzureBlobLocation loc, ParseAzureUri(uri));
    TR_ASSIGN_OR_RETURN(out.store,
                        OpenStore(fmt::format("az://{}/{}", loc.account, loc.container), env));
    out.key = loc.prefix;
    return out;
  }
  if (uri.rfind("s3://", 0) == 0) {
    TR_ASSIGN_OR_RETURN(S3Location loc, ParseS3Uri(uri));
    TR_ASSIGN_OR_RETURN(out.store, OpenStore("s3://" + loc.bucket, env));
    out.key = loc.prefix;
    return out;
  }
  ParsedUrl url;
  if (!ParseUrl(uri, &url)) {
    return InvalidArgumentError(
        fmt::format("{}: not an az://, s3:// or http(s):// URI", RedactUri(uri)));
  }
  TR_ASSIGN_OR_RETURN(std::string key, KeyPrefixOf(uri, url.path.substr(1)));
  TR_RETURN_IF_ERROR(CheckStoreLibraries(uri, /*xml=*/false));
  out.store = std::make_unique<HttpsStore>(url.scheme + "://" + url.host, url.query);
  out.key = key;
  return out;
}

}  // namespace trainrun
