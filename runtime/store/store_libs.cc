#include "runtime/store/store_libs.h"

#include <dlfcn.h>

#include <mutex>

#include <fmt/format.h>

namespace trainrun {
namespace {

// An error that tells a user of a slim image what to install. Ubuntu 24.04 renamed
// libcurl4 for its 64-bit time_t transition.
Status MissingLibrary(const std::string& soname, const char* what, const char* packages,
                      const std::string& why) {
  return NotSupportedError(fmt::format(
      "object stores and https:// data need {} ({}), which this trainrun loads when first "
      "used, and it could not be loaded: {}; install it (Debian and Ubuntu: apt-get install {})",
      what, soname, why, packages));
}

// Resolves `name` from `handle` into `*fn`; false (and `*missing` set) if absent.
template <typename Fn>
bool Resolve(void* handle, const char* name, Fn* fn, std::string* missing) {
  void* symbol = dlsym(handle, name);
  if (symbol == nullptr) {
    if (missing->empty()) *missing = name;
    return false;
  }
  *fn = reinterpret_cast<Fn>(symbol);
  return true;
}

void* Open(const std::string& soname, std::string* why) {
  void* handle = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    *why = error != nullptr ? error : "dlopen failed";
  }
  return handle;
}

constexpr const char* kCurlPackages = "libcurl4, or libcurl4t64 on Ubuntu 24.04";
constexpr const char* kXmlPackages = "libxml2";

}  // namespace

Result<CurlApi> LoadCurlApi(const std::string& soname) {
  std::string why;
  void* handle = Open(soname, &why);
  if (handle == nullptr) return MissingLibrary(soname, "libcurl", kCurlPackages, why);
  CurlApi api{};
  std::string missing;
  Resolve(handle, "curl_global_init", &api.global_init, &missing);
  Resolve(handle, "curl_easy_init", &api.easy_init, &missing);
  Resolve(handle, "curl_easy_reset", &api.easy_reset, &missing);
  Resolve(handle, "curl_easy_setopt", &api.easy_setopt, &missing);
  Resolve(handle, "curl_easy_perform", &api.easy_perform, &missing);
  Resolve(handle, "curl_easy_getinfo", &api.easy_getinfo, &missing);
  Resolve(handle, "curl_easy_cleanup", &api.easy_cleanup, &missing);
  Resolve(handle, "curl_easy_strerror", &api.easy_strerror, &missing);
  Resolve(handle, "curl_slist_append", &api.slist_append, &missing);
  Resolve(handle, "curl_slist_free_all", &api.slist_free_all, &missing);
  if (!missing.empty()) {
    return MissingLibrary(soname, "libcurl", kCurlPackages,
                          fmt::format("it has no {} (too old?)", missing));
  }
  return api;
}

Result<XmlApi> LoadXmlApi(const std::string& soname) {
  std::string why;
  void* handle = Open(soname, &why);
  if (handle == nullptr) return MissingLibrary(soname, "libxml2", kXmlPackages, why);
  XmlApi api{};
  std::string missing;
  Resolve(handle, "xmlReadMemory", &api.read_memory, &missing);
  Resolve(handle, "xmlDocGetRootElement", &api.doc_get_root_element, &missing);
  Resolve(handle, "xmlFreeDoc", &api.free_doc, &missing);
  if (!missing.empty()) {
    return MissingLibrary(soname, "libxml2", kXmlPackages,
                          fmt::format("it has no {} (too old?)", missing));
  }
  return api;
}

#ifdef TRAINRUN_DLOPEN_STORE_LIBS

Result<const CurlApi*> Curl() {
  // Loaded once; a failure is remembered too, so every caller sees the same error.
  static const Result<CurlApi> api = [] {
    Result<CurlApi> loaded = LoadCurlApi(kCurlSoname);
    if (loaded.ok()) loaded->global_init(CURL_GLOBAL_DEFAULT);
    return loaded;
  }();
  if (!api.ok()) return api.status();
  return &*api;
}

Result<const XmlApi*> Xml() {
  static const Result<XmlApi> api = LoadXmlApi(kXmlSoname);
  if (!api.ok()) return api.status();
  return &*api;
}

#else  // linked

Result<const CurlApi*> Curl() {
  static const CurlApi api = [] {
    CurlApi linked{&curl_global_init,  &curl_easy_init,     &curl_easy_reset,   &curl_easy_setopt,
                   &curl_easy_perform, &curl_easy_getinfo,  &curl_easy_cleanup, &curl_easy_strerror,
                   &curl_slist_append, &curl_slist_free_all};
    linked.global_init(CURL_GLOBAL_DEFAULT);
    return linked;
  }();
  return &api;
}

Result<const XmlApi*> Xml() {
  static const XmlApi api{&xmlReadMemory, &xmlDocGetRootElement, &xmlFreeDoc};
  return &api;
}

#endif

}  // namespace trainrun
