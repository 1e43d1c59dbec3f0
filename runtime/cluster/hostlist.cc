#include "runtime/cluster/hostlist.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <fmt/format.h>

namespace trainrun {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// "001-004,010" -> {"001", "002", "003", "004", "010"}.
Result<std::vector<std::string>> ExpandGroup(std::string_view group, std::string_view list) {
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= group.size()) {
    size_t comma = group.find(',', start);
    if (comma == std::string_view::npos) comma = group.size();
    std::string_view part = group.substr(start, comma - start);
    size_t dash = part.find('-');
    std::string_view lo = part.substr(0, dash);
    std::string_view hi = dash == std::string_view::npos ? lo : part.substr(dash + 1);
    if (!AllDigits(lo) || !AllDigits(hi) || lo.size() > 18 || hi.size() > 18) {
      return InvalidArgumentError(
          fmt::format("hostlist \"{}\": \"[{}]\": \"{}\" is not a number or a "
                      "range like 001-004",
                      list, group, part));
    }
    uint64_t low = std::stoull(std::string(lo));
    uint64_t high = std::stoull(std::string(hi));
    if (high < low) {
      return InvalidArgumentError(
          fmt::format("hostlist \"{}\": range \"{}\" runs backwards", list, part));
    }
    if (high - low >= kMaxHostlistHosts || values.size() + (high - low) >= kMaxHostlistHosts) {
      return InvalidArgumentError(fmt::format(
          "hostlist \"{}\": range \"{}\" has more than {} hosts", list, part, kMaxHostlistHosts));
    }
    for (uint64_t n = low; n <= high; ++n) {
      values.push_back(fmt::format("{:0{}}", n, lo.size()));
    }
    start = comma + 1;
  }
  return values;
}

Result<std::vector<std::string>> ExpandItem(std::string_view item, std::string_view list) {
  std::vector<std::string> hosts = {""};
  size_t pos = 0;
  while (pos < item.size()) {
    size_t open = item.find('[', pos);
    std::string_view text =
        item.substr(pos, open == std::string_view::npos ? item.npos : open - pos);
    if (text.find(']') != std::string_view::npos) {
      return InvalidArgumentError(
          fmt::format("hostlist \"{}\": unbalanced ']' in \"{}\"", list, item));
    }
    for (std::string& host : hosts) host += text;
    if (open == std::string_view::npos) break;
    size_t close = item.find(']', open);
    if (close == std::string_view::npos) {
      return InvalidArgumentError(
          fmt::format("hostlist \"{}\": '[' without ']' in \"{}\"", list, item));
    }
    std::string_view group = item.substr(open + 1, close - open - 1);
    if (group.find('[') != std::string_view::npos) {
      return InvalidArgumentError(fmt::format("hostlist \"{}\": nested '[' in \"{}\"", list, item));
    }
    TR_ASSIGN_OR_RETURN(std::vector<std::string> values, ExpandGroup(group, list));
    if (hosts.size() * values.size() > kMaxHostlistHosts) {
      return InvalidArgumentError(
          fmt::format("hostlist \"{}\": more than {} hosts", list, kMaxHostlistHosts));
    }
    // Checked before anything is built: the names' length and the bytes in all.
    size_t host_bytes = 0, longest_host = 0, value_bytes = 0, longest_value = 0;
    for (const std::string& host : hosts) {
      host_bytes += host.size();
      longest_host = std::max(longest_host, host.size());
    }
    for (const std::string& value : values) {
      value_bytes += value.size();
      longest_value = std::max(longest_value, value.size());
    }
    if (longest_host + longest_value + (item.size() - close - 1) > kMaxHostNameLength) {
      return InvalidArgumentError(fmt::format(
          "hostlist \"{}\": a host name longer than {} characters", list, kMaxHostNameLength));
    }
    if (host_bytes * values.size() + hosts.size() * value_bytes > kMaxHostlistBytes) {
      return InvalidArgumentError(fmt::format("hostlist \"{}\": its names take more than {} MiB",
                                              list, kMaxHostlistBytes >> 20));
    }
    std::vector<std::string> product;
    product.reserve(hosts.size() * values.size());
    for (const std::string& host : hosts) {
      for (const std::string& value : values) product.push_back(host + value);
    }
    hosts = std::move(product);
    pos = close + 1;
  }
  if (hosts.front().size() > kMaxHostNameLength) {
    return InvalidArgumentError(fmt::format(
        "hostlist \"{}\": a host name longer than {} characters", list, kMaxHostNameLength));
  }
  return hosts;
}

}  // namespace

Result<std::vector<std::string>> ExpandHostlist(std::string_view list) {
  std::vector<std::string> hosts;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    char c = i < list.size() ? list[i] : ',';
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0) {
      return InvalidArgumentError(fmt::format("hostlist \"{}\": unbalanced ']'", list));
    }
    if (c != ',' || depth > 0) continue;
    std::string_view item = list.substr(start, i - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())))
      item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back())))
      item.remove_suffix(1);
    if (item.empty()) {
      return InvalidArgumentError(fmt::format("hostlist \"{}\": empty host name", list));
    }
    TR_ASSIGN_OR_RETURN(std::vector<std::string> expanded, ExpandItem(item, list));
    if (hosts.size() + expanded.size() > kMaxHostlistHosts) {
      return InvalidArgumentError(
          fmt::format("hostlist \"{}\": more than {} hosts", list, kMaxHostlistHosts));
    }
    hosts.insert(hosts.end(), expanded.begin(), expanded.end());
    start = i + 1;
  }
  if (depth != 0)
    return InvalidArgumentError(fmt::format("hostlist \"{}\": '[' without ']'", list));
  return hosts;
}

}  // namespace trainrun
