// Prompt templates: the text a policy sees, built from a prompt record's fields.
//
// A template is plain text with {field} placeholders filled from a JSON object (strings as they are, numbers
// and booleans as JSON writes them); {{ and }} stand for literal braces. Built-in templates are known by
// name:
//   "r1_zero"  the DeepSeek-R1-Zero template (arXiv 2501.12948, Table 1) with the question as {question}
//   "plain"    "{question}"
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "aha/core/config_json.h"

namespace aha::text {

// The built-in template called `name_or_text`, or the text itself when it is no built-in name. A single word
// of lowercase letters, digits and underscores that is no built-in name is an error listing the names (it is
// a misspelt name far more often than a template without placeholders).
std::string resolve_template(std::string_view name_or_text);

// The names of the built-in templates.
std::vector<std::string> builtin_template_names();

// `tmpl` with each {field} replaced by fields[field]. Throws aha::Error naming the field and the template for
// a missing field, a field that is an object, array or null, an unclosed or empty {}, and a lone } .
std::string render(std::string_view tmpl, const Json& fields);

}  // namespace aha::text
