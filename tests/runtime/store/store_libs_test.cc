// libcurl and libxml2 loaded with dlopen (the portable build's way): the tables
// resolve from the real libraries, and a missing library is an error that names it
// and the package to install.
#include "runtime/store/store_libs.h"

#include <gtest/gtest.h>

namespace trainrun {
namespace {

TEST(StoreLibsTest, LoadsLibcurlAndItWorks) {
  Result<CurlApi> api = LoadCurlApi(kCurlSoname);
  ASSERT_TRUE(api.ok()) << api.status().message();
  ASSERT_EQ(api->global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
  CURL* curl = api->easy_init();
  ASSERT_NE(curl, nullptr);
  EXPECT_EQ(api->easy_setopt(curl, CURLOPT_URL, "http://127.0.0.1:1/"), CURLE_OK);
  api->easy_cleanup(curl);
  EXPECT_STREQ(api->easy_strerror(CURLE_OK), "No error");
}

TEST(StoreLibsTest, LoadsLibxml2AndItParses) {
  Result<XmlApi> api = LoadXmlApi(kXmlSoname);
  ASSERT_TRUE(api.ok()) << api.status().message();
  const char text[] = "<a><b>x</b></a>";
  xmlDocPtr doc = api->read_memory(text, sizeof(text) - 1, nullptr, nullptr, XML_PARSE_NONET);
  ASSERT_NE(doc, nullptr);
  xmlNodePtr root = api->doc_get_root_element(doc);
  ASSERT_NE(root, nullptr);
  EXPECT_STREQ(reinterpret_cast<const char*>(root->name), "a");
  api->free_doc(doc);
}

TEST(StoreLibsTest, MissingLibcurlNamesThePackage) {
  Result<CurlApi> api = LoadCurlApi("libcurl-not-installed.so.4");
  ASSERT_FALSE(api.ok());
  EXPECT_EQ(api.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(api.status().message().find("libcurl-not-installed.so.4"), std::string::npos);
  EXPECT_NE(api.status().message().find("apt-get install libcurl4"), std::string::npos)
      << api.status().message();
}

TEST(StoreLibsTest, MissingLibxml2NamesThePackage) {
  Result<XmlApi> api = LoadXmlApi("libxml2-not-installed.so.2");
  ASSERT_FALSE(api.ok());
  EXPECT_NE(api.status().message().find("apt-get install libxml2"), std::string::npos)
      << api.status().message();
}

TEST(StoreLibsTest, ALibraryWithoutTheFunctionsIsRefused) {
  // libc is there but is not libcurl: the first missing function is named.
  Result<CurlApi> api = LoadCurlApi("libc.so.6");
  ASSERT_FALSE(api.ok());
  EXPECT_NE(api.status().message().find("curl_global_init"), std::string::npos)
      << api.status().message();
}

TEST(StoreLibsTest, TheProcessTablesAreUsable) {
  Result<const CurlApi*> curl = Curl();
  ASSERT_TRUE(curl.ok()) << curl.status().message();
  EXPECT_NE((*curl)->easy_perform, nullptr);
  Result<const XmlApi*> xml = Xml();
  ASSERT_TRUE(xml.ok()) << xml.status().message();
  EXPECT_NE((*xml)->free_doc, nullptr);
}

}  // namespace
}  // namespace trainrun
