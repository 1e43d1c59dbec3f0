#include "base/redact.h"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/text.h"

namespace trainrun {
namespace {

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsSigningParameter(std::string_view name) {
  static const char* const kNames[] = {"SIG",  "SIGNATURE", "TOKEN",    "ACCESS_TOKEN",
                                       "CODE", "KEY",       "PASSWORD", "SECRET"};
  std::string upper = Upper(name);
  if (upper.rfind("X-AMZ-", 0) == 0) return true;
  for (const char* n : kNames) {
    if (upper == n) return true;
  }
  return false;
}

// A value that is a whole SAS query or storage connection string.
bool IsCredentialText(std::string_view value) {
  const std::string upper = Upper(value);
  if (upper.find("ACCOUNTKEY=") != std::string::npos ||
      upper.find("SHAREDACCESSSIGNATURE=") != std::string::npos) {
    return true;
  }
  // "sig=..." at the start or after '&', '?' or ';': an Azure SAS signature.
  for (size_t at = upper.find("SIG="); at != std::string::npos; at = upper.find("SIG=", at + 1)) {
    if (at == 0 || upper[at - 1] == '&' || upper[at - 1] == '?' || upper[at - 1] == ';') {
      return true;
    }
  }
  return false;
}

// The option name of "--hf-token=x" or "-p": without dashes and value.
std::string_view OptionName(std::string_view arg) {
  size_t start = arg.find_first_not_of('-');
  if (start == std::string_view::npos) return {};
  size_t end = arg.find('=', start);
  return arg.substr(start, end == std::string_view::npos ? arg.size() - start : end - start);
}

struct SecretRegistry {
  std::mutex mu;
  std::vector<std::string> values;  // longest first, so a longer secret wins
};

SecretRegistry& Registry() {
  static SecretRegistry* registry = new SecretRegistry();  // never destroyed: used at exit
  return *registry;
}

}  // namespace

bool IsSecretName(std::string_view name) {
  const std::string upper = Upper(name);
  // The shell's working directories, not a password ("DB_PWD" still is one).
  if (upper == "PWD" || upper == "OLDPWD") return false;
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
  // Connection strings ("...;AccountKey=...") and bare SAS queries ("sv=...&sig=...").
  if (IsCredentialText(value)) return kRedacted;
  return ScrubSecrets(value);
}

std::vector<std::string> RedactArguments(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  out.reserve(argv.size());
  bool value_is_secret = false;  // the previous word was "--password" and the like
  for (const std::string& arg : argv) {
    const bool is_option =
        arg.size() > 1 && arg[0] == '-' && !std::isdigit(static_cast<unsigned char>(arg[1]));
    if (value_is_secret && !is_option) {
      out.push_back(kRedacted);
      value_is_secret = false;
      continue;
    }
    value_is_secret = false;
    if (is_option) {
      std::string_view name = OptionName(arg);
      size_t eq = arg.find('=');
      if (!name.empty() && IsSecretName(name)) {
        if (eq == std::string::npos) {
          value_is_secret = true;
          out.push_back(arg);
        } else {
          out.push_back(arg.substr(0, eq + 1) + kRedacted);
        }
        continue;
      }
      if (eq != std::string::npos) {
        out.push_back(arg.substr(0, eq + 1) + RedactValue("", arg.substr(eq + 1)));
        continue;
      }
      out.push_back(ScrubSecrets(arg));
      continue;
    }
    // "name=value" words (Hydra overrides, key=value scripts) whose name is secret.
    size_t eq = arg.find('=');
    if (eq != std::string::npos && eq > 0 && arg.find("://") > eq &&
        IsSecretName(std::string_view(arg).substr(0, eq)) && !IsCredentialText(arg)) {
      out.push_back(arg.substr(0, eq + 1) + kRedacted);
      continue;
    }
    out.push_back(RedactValue("", arg));
  }
  return out;
}

void RegisterSecret(std::string_view value) {
  if (value.size() < kMinSecretLength) return;
  SecretRegistry& r = Registry();
  std::lock_guard lock(r.mu);
  if (std::find(r.values.begin(), r.values.end(), value) != r.values.end()) return;
  r.values.emplace_back(value);
  std::stable_sort(r.values.begin(), r.values.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

void RegisterSecretsFromEnvironment(const char* const* environ) {
  if (environ == nullptr) return;
  for (const char* const* entry = environ; *entry != nullptr; ++entry) {
    std::string_view e(*entry);
    size_t eq = e.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = e.substr(0, eq);
    std::string_view value = e.substr(eq + 1);
    // A path names where a credential lives (GOOGLE_APPLICATION_CREDENTIALS=/k.json),
    // it is not one: hiding it would only garble messages.
    if (!value.empty() && value.front() == '/') continue;
    if (IsSecretName(name) || IsCredentialText(value)) RegisterSecret(value);
  }
}

std::string ScrubSecrets(std::string_view text) {
  std::string out(text);
  SecretRegistry& r = Registry();
  std::lock_guard lock(r.mu);
  for (const std::string& secret : r.values) ReplaceAll(&out, secret, kRedacted);
  return out;
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
      for (auto it = node->begin(); it != node->end(); ++it)
        stack.emplace_back(&it.value(), it.key());
    } else if (node->is_array()) {
      const std::string lower = ToLower(name);
      if (lower == "arguments" || lower == "command" || lower == "script_params" ||
          lower == "scriptparams") {
        // A command line: a secret option's value is the next item, whatever its type.
        std::vector<std::string> words;
        for (const json& item : *node) {
          words.push_back(item.is_string() ? item.get<std::string>() : item.dump());
        }
        std::vector<std::string> redacted = RedactArguments(words);
        for (size_t i = 0; i < words.size(); ++i) {
          if (redacted[i] != words[i]) (*node)[i] = redacted[i];
        }
        continue;
      }
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
