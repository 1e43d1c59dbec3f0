// The small XML the object stores answer with (listings, errors, upload ids),
// parsed by libxml2 into a plain tree of elements.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace trainrun {

struct XmlElement {
  std::string name;  // local name, namespace prefix dropped
  std::string text;  // the concatenated text directly inside, entities decoded
  std::vector<XmlElement> children;

  // The first child named `name`, or null.
  const XmlElement* Child(std::string_view name) const;
  // The text of the first child named `name`, or "".
  std::string ChildText(std::string_view name) const;
  // Every child named `name`, in order.
  std::vector<const XmlElement*> Children(std::string_view name) const;
};

// Parses a document; no network access, no DTDs, no entity expansion beyond the
// predefined ones. `what` names the document in errors.
Result<XmlElement> ParseXml(std::string_view text, std::string_view what);

// `text` for element text or an attribute value (in either quotes): & < > " ' as
// entities; control characters other than tab dropped. UTF-8 passes unchanged.
std::string XmlEscape(std::string_view text);

}  // namespace trainrun
