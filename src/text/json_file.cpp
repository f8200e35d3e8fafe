#include "json_file.h"

#include <filesystem>

#include "aha/core/error.h"
#include "aha/io/file.h"

namespace aha::text::detail {

nlohmann::json read_json(const std::string& path) {
  const std::string text = io::read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    if (auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
    throw Error("invalid JSON: " + what, path);
  }
}

nlohmann::json read_config_beside(const std::string& tokenizer_json_path) {
  const auto config = std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config, ec)) return nullptr;
  return read_json(config.string());
}

}  // namespace aha::text::detail
