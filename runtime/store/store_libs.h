// libcurl and libxml2: the two libraries only the object stores (az://, s3://) and
// https:// data need.
//
// The regular build links them. The portable build (TRAINRUN_PORTABLE, README
// "Install") loads them with dlopen on first use instead, so a run whose history and
// data are file:// needs neither, and a machine without them gets an error that names
// the package to install rather than a loader failure at start.
//
// Callers go through the tables below, never the libraries' functions directly.
#pragma once

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <string>

#include "base/status.h"

namespace trainrun {

// The libcurl calls HttpClient makes (curl.h's signatures).
struct CurlApi {
  CURLcode (*global_init)(long flags);
  CURL* (*easy_init)();
  void (*easy_reset)(CURL* curl);
  CURLcode (*easy_setopt)(CURL* curl, CURLoption option, ...);
  CURLcode (*easy_perform)(CURL* curl);
  CURLcode (*easy_getinfo)(CURL* curl, CURLINFO info, ...);
  void (*easy_cleanup)(CURL* curl);
  const char* (*easy_strerror)(CURLcode code);
  curl_slist* (*slist_append)(curl_slist* list, const char* text);
  void (*slist_free_all)(curl_slist* list);
};

// The libxml2 calls ParseXml makes.
struct XmlApi {
  xmlDocPtr (*read_memory)(const char* buffer, int size, const char* url, const char* encoding,
                           int options);
  xmlNodePtr (*doc_get_root_element)(const xmlDoc* doc);
  void (*free_doc)(xmlDocPtr doc);
};

// The sonames the portable build loads, and the Debian/Ubuntu packages that hold them.
inline constexpr const char* kCurlSoname = "libcurl.so.4";
inline constexpr const char* kXmlSoname = "libxml2.so.2";

// This process's libcurl, curl_global_init done (once). The portable build loads it
// on the first call and keeps it loaded; the table lives as long as the process.
// Thread-safe. Errors (portable build only, the same error on every call):
// kNotSupported when the library cannot be loaded; the message names the library,
// says why, and names the package to install.
Result<const CurlApi*> Curl();

// The same for libxml2.
Result<const XmlApi*> Xml();

// Loads `soname` with dlopen and resolves the table from it, for Curl()/Xml() and
// their tests: the library stays loaded (never dlclose'd). Errors as above.
Result<CurlApi> LoadCurlApi(const std::string& soname);
Result<XmlApi> LoadXmlApi(const std::string& soname);

}  // namespace trainrun
