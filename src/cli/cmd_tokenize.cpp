// aha tokenize: shows how a tokenizer cuts a text (or each record of a JSONL file) into tokens.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "aha/core/error.h"
#include "aha/io/jsonl.h"
#include "aha/text/bpe.h"
#include "aha/text/template.h"
#include "aha/text/tokenizer.h"
#include "aha/text/utf8.h"
#include "commands.h"

namespace aha::cli {

namespace {

struct TokenizeArgs {
  std::string tokenizer, text, input, field = "question", template_name;
  bool add_special_tokens = false, quiet = false;
};

// One line per token: the id and the bytes it stands for, quoted and escaped.
void print_tokens(const text::Tokenizer& tok, const std::vector<int64_t>& ids) {
  const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(&tok);
  for (int64_t id : ids) {
    const std::string bytes = bpe ? bpe->token_bytes(id) : tok.id_to_token(id);
    std::printf("%8lld  %s%s\n", static_cast<long long>(id), text::quote_bytes(bytes).c_str(),
                tok.is_special(id) ? "  (special)" : "");
  }
}

void run(const TokenizeArgs& a) {
  AHA_CHECK(a.text.empty() != a.input.empty(), "tokenize: give exactly one of --text and --input");
  const auto tok = text::load_tokenizer(a.tokenizer);
  const std::optional<std::string> tmpl =
      a.template_name.empty() ? std::nullopt : std::optional(text::resolve_template(a.template_name));
  if (!a.text.empty()) {
    const std::string prompt = tmpl ? text::render(*tmpl, Json{{a.field, a.text}}) : a.text;
    const auto ids = tok->encode(prompt, a.add_special_tokens);
    if (!a.quiet) print_tokens(*tok, ids);
    std::printf("%zu tokens\n", ids.size());
    return;
  }
  size_t texts = 0, tokens = 0, longest = 0;
  double seconds = 0;
  for (const auto& record : io::read_jsonl(a.input)) {
    const std::string where = a.input + ":" + std::to_string(record.line);
    std::string prompt;
    if (tmpl) {
      try {
        prompt = text::render(*tmpl, record.value);
      } catch (const Error& e) {
        throw Error(e.message(), where);
      }
    } else {
      auto it = record.value.is_object() ? record.value.find(a.field) : record.value.end();
      if (it == record.value.end() || !it->is_string())
        throw Error("no string field \"" + a.field + "\" (choose one with --field)", where);
      prompt = it->get<std::string>();
    }
    const auto start = std::chrono::steady_clock::now();
    const auto ids = tok->encode(prompt, a.add_special_tokens);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++texts;
    tokens += ids.size();
    longest = std::max(longest, ids.size());
    if (!a.quiet) {
      std::printf("line %lld: %zu tokens\n", static_cast<long long>(record.line), ids.size());
      print_tokens(*tok, ids);
    }
  }
  std::printf("%zu texts, %zu tokens (%.1f per text, longest %zu), encoded in %.3f s (%.0f tokens/s)\n",
              texts, tokens, texts ? static_cast<double>(tokens) / texts : 0.0, longest, seconds,
              seconds > 0 ? tokens / seconds : 0.0);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "show the tokens of a text or of each record of a JSONL file");
  auto a = std::make_shared<TokenizeArgs>();
  cmd->add_option("--tokenizer", a->tokenizer,
                  "tokenizer.json, a directory holding one, or a {\"type\": \"char\"} tokenizer file")
      ->required();
  cmd->add_option("--text", a->text, "the text to tokenize");
  cmd->add_option("--input", a->input, "a JSONL file: tokenize one field of every record")
      ->check(CLI::ExistingFile);
  cmd->add_option("--field", a->field, "the record field to tokenize (default: question)");
  cmd->add_option(
      "--template", a->template_name,
      "render each record (or {field: --text}) through a prompt template first: r1_zero, plain or a "
      "template text with {field} placeholders");
  cmd->add_flag("--add-special-tokens", a->add_special_tokens,
                "apply the tokenizer's post-processing (e.g. BOS)");
  cmd->add_flag("-q,--quiet", a->quiet, "print only the totals");
  cmd->callback([a] { run(*a); });
}

}  // namespace aha::cli
