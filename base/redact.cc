#include "base/redact.h"

#include <cctype>
#include <vector>

#include <nlohmann/json.hpp>

namespace trainrun {
namespace {

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsSigningParameter(std::string_view name) {
  static const char* const kNames[] = {"SIG", "SIGNATURE", "TOKEN", "ACCESS_TOKEN",
                                       "CODE", "KEY", "PASSWORD", "SECRET"};
  std::string upper = Upper(name);
  if (upper.rfind("X-AMZ-", 0) == 0) return true;
  for (const char* n : kNames) {
    if (upper == n) return true;
  }
  return false;
}

}  // namespace

bool IsSecretName(std::string_view name) {
  const std::string upper = Upper(name);
  for (const char* part : {"SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY"}) {
    if (upper.find(part) != std::string::npos) return true;
  }
  size_t start = 0;
  while (start <= upper.size()) {
    size_t end = upper.find_first_of("_-.", start);
    if (end == std::string::npos) end = upper.size();
    std::string_view word(upper.data() + start, end - start);
    for (const char* w : {"KEY", "PWD", "AUTH", "SAS", "SIGNATURE", "CONNECTION"}) {
      if (word == w) return true;
    }
    // HF_TOKEN, GITHUB_TOKEN, ACCESSTOKEN; not TOKENIZERS_PARALLELISM.
    if (word.size() >= 5 && word.substr(word.size() - 5) == "TOKEN") return true;
    start = end + 1;
  }
  return false;
}

std::string RedactUri(std::string_view uri) {
  std::string out(uri);
  size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    size_t host = scheme + 3;
    size_t at = out.find('@', host);
    size_t end = out.find_first_of("/?#", host);
    if (at != std::string::npos && (end == std::string::npos || at < end)) {
      out = out.substr(0, host) + kRedacted + "@" + out.substr(at + 1);
    }
  }
  size_t query = out.find('?');
  if (query == std::string::npos) return out;
  std::string rebuilt = out.substr(0, query + 1);
  size_t pos = query + 1;
  bool first = true;
  bool azure_sas = out.find("sig=", query) != std::string::npos;
  while (pos <= out.size()) {
    size_t amp = out.find('&', pos);
    if (amp == std::string::npos) amp = out.size();
    std::string param = out.substr(pos, amp - pos);
    size_t eq = param.find('=');
    std::string name = param.substr(0, eq);
    if (!first) rebuilt += "&";
    first = false;
    // With an Azure SAS every parameter is part of the grant; keep only names.
    if (eq != std::string::npos && (azure_sas || IsSigningParameter(name))) {
      rebuilt += name + "=" + kRedacted;
    } else {
      rebuilt += param;
    }
    pos = amp + 1;
  }
  return rebuilt;
}

std::string RedactValue(std::string_view name, std::string_view value) {
  if (IsSecretName(name)) return kRedacted;
  if (value.find("://") != std::string_view::npos) return RedactUri(value);
  // Connection strings: "DefaultEndpointsProtocol=...;AccountKey=...".
  std::string upper = Upper(value);
  if (upper.find("ACCOUNTKEY=") != std::string::npos ||
      upper.find("SHAREDACCESSSIGNATURE=") != std::string::npos) {
    return kRedacted;
  }
  return std::string(value);
}

nlohmann::json RedactJobJson(const nlohmann::json& job) {
  using nlohmann::json;
  json out = job;
  // Walk everything: a secret can hide in an argument or a data URI too.
  std::vector<std::pair<json*, std::string>> stack{{&out, ""}};
  while (!stack.empty()) {
    auto [node, name] = stack.back();
    stack.pop_back();
    if (node->is_object()) {
      for (auto it = node->begin(); it != node->end(); ++it) stack.emplace_back(&it.value(), it.key());
    } else if (node->is_array()) {
      for (json& item : *node) stack.emplace_back(&item, "");
    } else if (node->is_string()) {
      *node = RedactValue(name, node->get<std::string>());
    } else if (!name.empty() && IsSecretName(name) && !node->is_null()) {
      *node = kRedacted;
    }
  }
  return out;
}

}  // namespace trainrun
