// JsonDepthCheck: a SAX handler that stops nlohmann's parser at the first array or
// object nested deeper than a limit, before any tree is built (building, copying and
// printing a tree recurse once per level; the SAX parser keeps its own stack). It
// also keeps the first syntax error and its byte offset.
//
//   JsonDepthCheck check(64);
//   if (!nlohmann::json::sax_parse(text, &check)) { check.too_deep() / check.error() }
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace trainrun {

class JsonDepthCheck : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit JsonDepthCheck(size_t max_depth) : max_depth_(max_depth) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return Enter(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return Leave(); }
  bool start_array(std::size_t) override { return Enter(); }
  bool end_array() override { return Leave(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    error_ = e.what();
    error_position_ = position;
    return false;
  }

  // The parse stopped because the nesting went past max_depth.
  bool too_deep() const { return too_deep_; }
  // The first syntax error, as nlohmann words it; "" when there was none.
  const std::string& error() const { return error_; }
  // Where it is: nlohmann counts the offending byte from 1.
  size_t error_position() const { return error_position_; }

 private:
  bool Enter() {
    if (++depth_ > max_depth_) too_deep_ = true;
    return !too_deep_;
  }
  bool Leave() {
    --depth_;
    return true;
  }

  size_t max_depth_;
  size_t depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
  size_t error_position_ = 0;
};

}  // namespace trainrun
