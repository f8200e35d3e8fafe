// `aha generate`: sample completions of a prompt and stream them to the terminal.
#include <iostream>

#include "aha/core/error.h"
#include "aha/model/checkpoint.h"
#include "aha/rollout/sampler.h"
#include "aha/text/tokenizer.h"
#include "commands.h"

namespace aha::cli {
namespace {

// Prints the part of a growing completion not printed yet, holding back a trailing U+FFFD (a UTF-8 sequence
// the next token may complete).
class Streamer {
 public:
  explicit Streamer(const text::Tokenizer& tok) : tok_(tok) {}
  void add(int64_t id) {
    ids_.push_back(id);
    std::string text = tok_.decode(ids_);
    const std::string replacement = "\xEF\xBF\xBD";
    size_t end = text.size();
    while (end >= 3 && text.compare(end - 3, 3, replacement) == 0)
      end -= 3;
    if (end > printed_) {
      std::cout << text.substr(printed_, end - printed_) << std::flush;
      printed_ = end;
    }
  }
  void finish() {
    const std::string text = tok_.decode(ids_);
    if (text.size() > printed_) std::cout << text.substr(printed_);
    std::cout << "\n";
  }

 private:
  const text::Tokenizer& tok_;
  std::vector<int64_t> ids_;
  size_t printed_ = 0;
};

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("generate", "sample completions of a prompt and stream them to the terminal");
  struct Args {
    std::string model, tokenizer, prompt;
    rollout::SamplingParams params;
    bool greedy = false;
  };
  auto a = std::make_shared<Args>();
  a->params.max_new_tokens = 128;
  cmd->add_option("--model", a->model, "HF-format model directory")->required();
  cmd->add_option("--tokenizer", a->tokenizer,
                  "tokenizer.json or its directory (default: the model directory)");
  cmd->add_option("--prompt", a->prompt, "prompt text")->required();
  cmd->add_option("-n,--n", a->params.n, "completions to sample")->capture_default_str();
  cmd->add_option("--max-new-tokens", a->params.max_new_tokens, "longest completion")->capture_default_str();
  cmd->add_option("--temperature", a->params.temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--top-k", a->params.top_k, "keep the k most likely tokens (0: off)")
      ->capture_default_str();
  cmd->add_option("--top-p", a->params.top_p, "nucleus mass (1: off)")->capture_default_str();
  cmd->add_option("--min-p", a->params.min_p, "relative probability floor (0: off)")->capture_default_str();
  cmd->add_option("--seed", a->params.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--stop", a->params.stop_strings, "stop string (repeatable)");
  cmd->add_flag("--greedy", a->greedy, "argmax decoding (temperature 0)");
  cmd->callback([a] {
    auto model = model::load_pretrained(a->model);
    model->eval();
    const auto tokenizer = text::load_tokenizer(a->tokenizer.empty() ? a->model : a->tokenizer);
    if (a->greedy) a->params.temperature = 0;
    const std::vector<int64_t> prompt = tokenizer->encode(a->prompt, /*add_special_tokens=*/true);
    AHA_CHECK(!prompt.empty(), "the prompt encodes to no tokens");
    std::vector<Streamer> streams(static_cast<size_t>(a->params.n), Streamer(*tokenizer));
    rollout::GenerateOptions options;
    options.tokenizer = tokenizer.get();
    if (a->params.n == 1) options.on_token = [&](int64_t, int64_t id) { streams[0].add(id); };
    const auto result = rollout::Sampler().generate(*model, {prompt}, a->params, options);
    for (const auto& c : result.completions) {
      if (a->params.n == 1) {
        streams[0].finish();
      } else {
        std::cout << "--- completion " << c.sample << " (" << rollout::finish_reason_name(c.finish) << ", "
                  << c.tokens.size() << " tokens)\n"
                  << tokenizer->decode(c.tokens) << "\n";
      }
    }
    std::cerr << "[" << result.decode_tokens << " tokens, prefill " << result.prefill_tokens_per_second()
              << " tok/s, decode " << result.decode_tokens_per_second() << " tok/s]\n";
  });
}

}  // namespace aha::cli
