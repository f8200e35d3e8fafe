// Reading tokenizer files as plain nlohmann::json. Private to src/text/. A tokenizer.json holds ~10^5
// vocabulary keys: nlohmann::ordered_json (aha::Json) looks keys up linearly while parsing, far too slow for
// that.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace aha::text::detail {

// Parses the file; errors name the path (and the byte offset of a syntax error).
nlohmann::json read_json(const std::string& path);
// tokenizer_config.json in the directory of `tokenizer_json_path`, or null when there is none.
nlohmann::json read_config_beside(const std::string& tokenizer_json_path);

}  // namespace aha::text::detail
