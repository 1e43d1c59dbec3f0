// XmlEscape: what the stores' request bodies and the metrics plot put into XML
// reads back as the text it was, in element text and in either kind of attribute.
#include "runtime/store/xml.h"

#include <gtest/gtest.h>

#include "runtime/store/store_libs.h"

namespace trainrun {
namespace {

TEST(XmlEscapeTest, EscapesTheFiveSpecialCharactersAndKeepsTheRest) {
  EXPECT_EQ(XmlEscape("plain text, caf\xc3\xa9"), "plain text, caf\xc3\xa9");
  EXPECT_EQ(XmlEscape(R"(a&b<c>d"e'f)"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(XmlEscape("&amp;"), "&amp;amp;");
}

TEST(XmlEscapeTest, DropsControlCharactersButKeepsTab) {
  EXPECT_EQ(XmlEscape(std::string("a\0b\x01"
                                  "c\x1b[31m\td\ne\rf",
                                  16)),
            "abc[31m\tdef");
}

TEST(XmlEscapeTest, ReadsBackAsTheTextItWas) {
  if (!Xml().ok()) GTEST_SKIP() << "needs libxml2 (libxml2 package): " << Xml().status().message();
  const std::string text = R"(<"quoted"> & 'single' caf)"
                           "\xc3\xa9";
  Result<XmlElement> doc = ParseXml("<a>" + XmlEscape(text) + "</a>", "test");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ(doc->text, text);
  // In a single-quoted attribute too: an unescaped ' would end it and the document
  // would not parse.
  doc = ParseXml("<a b='" + XmlEscape(text) + "'/>", "test");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
}

}  // namespace
}  // namespace trainrun
