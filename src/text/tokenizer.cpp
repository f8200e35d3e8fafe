// load_tokenizer: a directory (with tokenizer.json), an HF tokenizer.json, or a {"type": "char"} file.
#include "aha/text/tokenizer.h"

#include <filesystem>

#include "aha/core/config_json.h"
#include "aha/core/error.h"
#include "aha/io/file.h"
#include "aha/text/bpe.h"
#include "aha/text/char_tokenizer.h"
#include "json_file.h"

namespace aha::text {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    file = (fs::path(path) / "tokenizer.json").string();
    if (!fs::is_regular_file(file, ec)) throw Error("no tokenizer.json in this directory", path);
  } else if (!fs::exists(path, ec)) {
    throw Error("no such file or directory", path);
  }
  const nlohmann::json j = detail::read_json(file);
  if (j.is_object() && j.contains("type") && j["type"] == "char")
    return std::make_unique<CharTokenizer>(
        CharTokenizer::from_json(parse_json(io::read_file(file), file), file));
  return std::make_unique<BpeTokenizer>(j, detail::read_config_beside(file), file);
}

}  // namespace aha::text
