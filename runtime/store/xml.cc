#include "runtime/store/xml.h"

#include <fmt/format.h>

#include "runtime/store/store_libs.h"

namespace trainrun {
namespace {

void Convert(xmlNode* node, XmlElement* out) {
  out->name = reinterpret_cast<const char*>(node->name);
  for (xmlNode* child = node->children; child != nullptr; child = child->next) {
    if (child->type == XML_ELEMENT_NODE) {
      out->children.emplace_back();
      Convert(child, &out->children.back());
    } else if ((child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE) &&
               child->content != nullptr) {
      out->text += reinterpret_cast<const char*>(child->content);
    }
  }
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const XmlElement& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* c = Child(child_name);
  return c == nullptr ? "" : c->text;
}

std::vector<const XmlElement*> XmlElement::Children(std::string_view child_name) const {
  std::vector<const XmlElement*> out;
  for (const XmlElement& c : children) {
    if (c.name == child_name) out.push_back(&c);
  }
  return out;
}

Result<XmlElement> ParseXml(std::string_view text, std::string_view what) {
  // Skip a UTF-8 byte order mark, which Azure puts in front of its listings.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  TR_ASSIGN_OR_RETURN(const XmlApi* xml, Xml());
  xmlDoc* doc = xml->read_memory(text.data(), static_cast<int>(text.size()), nullptr, nullptr,
                                 XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == nullptr) {
    return IoError(
        fmt::format("{}: the service's answer is not valid XML: {}", what, text.substr(0, 200)));
  }
  XmlElement root;
  xmlNode* node = xml->doc_get_root_element(doc);
  if (node != nullptr) Convert(node, &root);
  xml->free_doc(doc);
  return root;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 does not allow most control characters, and a line break in an
        // attribute would be read back as a space.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out += c;
    }
  }
  return out;
}

}  // namespace trainrun
