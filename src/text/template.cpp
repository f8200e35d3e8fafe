#include "aha/text/template.h"

#include <utility>

#include "aha/core/error.h"

namespace aha::text {

namespace {

// The R1-Zero template exactly as the paper prints it, one line; "prompt" there is {question} here.
constexpr std::string_view kR1Zero =
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: "
    "{question}. Assistant:";

constexpr std::pair<std::string_view, std::string_view> kBuiltins[] = {
    {"r1_zero", kR1Zero},
    {"plain", "{question}"},
};

bool looks_like_a_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// How an error names the template: its first characters.
std::string describe(std::string_view tmpl) {
  constexpr size_t kShown = 60;
  std::string s =
      "template \"" + std::string(tmpl.substr(0, kShown)) + (tmpl.size() > kShown ? "...\"" : "\"");
  return s;
}

}  // namespace

std::vector<std::string> builtin_template_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : kBuiltins)
    names.emplace_back(name);
  return names;
}

std::string resolve_template(std::string_view name_or_text) {
  for (const auto& [name, text] : kBuiltins)
    if (name == name_or_text) return std::string(text);
  if (looks_like_a_name(name_or_text)) {
    std::string known;
    for (const auto& [name, text] : kBuiltins)
      known += (known.empty() ? "" : ", ") + std::string(name);
    AHA_FAIL("unknown prompt template \"", name_or_text, "\" (built-in: ", known,
             "; a template text needs a {field} or more than one word)");
  }
  return std::string(name_or_text);
}

std::string render(std::string_view tmpl, const Json& fields) {
  AHA_CHECK(fields.is_object(), describe(tmpl), ": the fields must be a JSON object, got ", fields.dump());
  std::string out;
  out.reserve(tmpl.size() + 256);
  size_t i = 0;
  while (i < tmpl.size()) {
    const char c = tmpl[i];
    if (c == '}') {
      AHA_CHECK(i + 1 < tmpl.size() && tmpl[i + 1] == '}', describe(tmpl), ": lone '}' at offset ", i,
                " (write }} for a literal brace)");
      out += '}';
      i += 2;
    } else if (c != '{') {
      out += c;
      ++i;
    } else if (i + 1 < tmpl.size() && tmpl[i + 1] == '{') {
      out += '{';
      i += 2;
    } else {
      const size_t close = tmpl.find('}', i + 1);
      AHA_CHECK(close != std::string_view::npos, describe(tmpl), ": unclosed '{' at offset ", i,
                " (write {{ for a literal brace)");
      const std::string name(tmpl.substr(i + 1, close - i - 1));
      AHA_CHECK(!name.empty() && name.find('{') == std::string::npos, describe(tmpl),
                ": bad placeholder at offset ", i, " (write {{ and }} for literal braces)");
      auto it = fields.find(name);
      if (it == fields.end()) {
        std::string have;
        for (auto f = fields.begin(); f != fields.end(); ++f)
          have += (have.empty() ? "" : ", ") + f.key();
        AHA_FAIL(describe(tmpl), ": field \"", name,
                 "\" is missing from the prompt (its fields: ", have.empty() ? "none" : have, ")");
      }
      if (it->is_string())
        out += it->get_ref<const std::string&>();
      else if (it->is_number() || it->is_boolean())
        out += it->dump();
      else
        AHA_FAIL(describe(tmpl), ": field \"", name, "\" is ", it->is_null() ? "null" : it->type_name(),
                 "; a placeholder takes a string, number or boolean");
      i = close + 1;
    }
  }
  return out;
}

}  // namespace aha::text
