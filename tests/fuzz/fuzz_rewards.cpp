// A seeded mutation fuzzer for the reward parsers: math answer extraction and number normalisation, the
// countdown expression parser, the format / tag / answer rewards, regex_match and language_consistency. Built
// under ASan and UBSan (tests/CMakeLists.txt) from the torch-free reward sources.
//
//   fuzz_rewards [ITERATIONS] [--seed=N] [--max-ms=M]
//
// Inputs are random byte strings, random strings over a dictionary of the tokens these parsers care about
// (tags, \boxed{, \frac, braces, signs, separators, CJK, broken UTF-8), and mutations of a seed corpus of
// realistic completions (insertions, deletions, duplications, splices, deep nesting, inputs grown to 64 KiB
// and more). Each input, and a ground truth cut from another, goes through every parser and reward; each
// result must satisfy its invariant (views inside the input, finite numbers, scores in their range), and
// each input must be done within M ms (default 2000, generous for sanitizers on a shared machine). Prints
// the counts, the slowest input's time and exits 0 on success, 1 on failure. Deterministic for a seed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "aha/core/log.h"
#include "aha/reward/builtin.h"
#include "aha/reward/countdown.h"
#include "aha/reward/language.h"
#include "aha/reward/math.h"
#include "aha/reward/reward.h"

namespace rw = aha::reward;

namespace {

struct Rng {  // splitmix64
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
};

const std::vector<std::string> kTokens = {"<think>",
                                          "</think>",
                                          "<answer>",
                                          "</answer>",
                                          "<think>\n",
                                          "\n</think>\n",
                                          "\n<answer>\n",
                                          "\n</answer>",
                                          "<answer",
                                          "</answer",
                                          "\\boxed{",
                                          "\\boxed {",
                                          "\\boxed",
                                          "{",
                                          "}",
                                          "{{",
                                          "}}",
                                          "\\frac{",
                                          "\\dfrac{",
                                          "\\tfrac",
                                          "\\text{",
                                          "\\mathrm{",
                                          "\\sqrt{",
                                          "\\left(",
                                          "\\right)",
                                          "\\$",
                                          "\\%",
                                          "\\(",
                                          "\\)",
                                          "\\",
                                          "$",
                                          "%",
                                          "1,000",
                                          "1,00",
                                          ",",
                                          ".",
                                          "..",
                                          "-",
                                          "--",
                                          "+",
                                          "*",
                                          "/",
                                          "//",
                                          "(",
                                          ")",
                                          "((",
                                          "))",
                                          " ",
                                          "\n",
                                          "\t",
                                          "\r\n",
                                          "0",
                                          "1",
                                          "7",
                                          "42",
                                          "-3.5",
                                          ".5",
                                          "12.",
                                          "3/4",
                                          "1e308",
                                          "1e-308",
                                          "9999999999999999999",
                                          "18446744073709551616",
                                          "0.0000001",
                                          "####",
                                          "#### 72",
                                          "apples",
                                          "km",
                                          "x",
                                          "=",
                                          "wait",
                                          "Wait,",
                                          "中",
                                          "文",
                                          "计算",
                                          "ひら",
                                          "カタ",
                                          "한국",
                                          "д",
                                          "мир",
                                          "λ",
                                          "ك",
                                          "\u0301",
                                          "\u00a0",
                                          "😀",
                                          "\xff",
                                          "\xc3",
                                          "\xe4\xb8",
                                          "\xf0\x9f",
                                          "\xed\xa0\x80",
                                          "\xc0\xaf",
                                          std::string(1, '\0'),
                                          "a",
                                          "aa",
                                          "aaaa",
                                          "b"};

const std::vector<std::string> kSeeds = {
    "<think>\nNatalia sold 48/2 = 24 clips in May.\n48+24 = 72\n</think>\n<answer>\n72\n</answer>",
    "<think>Let me compute: 44 + 19 = 63, 63 + 35 = 98</think><answer>44 + 19 + 35</answer>",
    "The answer is \\boxed{\\frac{3}{4}}. Wait, actually \\boxed{\\dfrac{10}{4}}",
    "<answer>so \\boxed{-1,000.50}</answer>",
    "<think>计算 2+2 等于 4</think><answer>四</answer>",
    "<think>Давайте посчитаем: 2 + 2 = 4</think>\n<answer>$18.00</answer>",
    "<answer>(95 - 19) / 4 + 3 * 2</answer>",
    "<answer>50\\%</answer> <answer>12 apples.</answer>",
    "<think>\nWait, let me re-check.\n</think>\n<answer>\n\\(\\text{20}\\)\n</answer>",
    "\\boxed{{{{7}}}} #### 7",
    "",
    "<think>cut off while thinking about 1/0 and \\frac{1}{0}",
};

std::string random_bytes(Rng& rng) {
  std::string s(rng.below(rng.chance(5) ? 4096 : 96), '\0');
  for (auto& c : s)
    c = static_cast<char>(rng.next());
  return s;
}

std::string random_tokens(Rng& rng) {
  std::string s;
  for (size_t i = 0, n = rng.below(rng.chance(5) ? 2000 : 40); i < n; ++i)
    s += rng.pick(kTokens);
  return s;
}

void mutate(std::string& s, Rng& rng) {
  const size_t pos = rng.below(s.size() + 1);
  switch (rng.below(9)) {
    case 0:
      s.insert(pos, rng.pick(kTokens));
      break;
    case 1:
      if (pos < s.size()) s.erase(pos, 1 + rng.below(std::min<size_t>(s.size() - pos, 16)));
      break;
    case 2:
      if (pos < s.size()) s[pos] = static_cast<char>(rng.next());
      break;
    case 3:
      s.resize(rng.below(s.size() + 1));
      break;
    case 4:  // a slice duplicated
      if (pos < s.size()) s.insert(rng.below(s.size() + 1), s.substr(pos, 1 + rng.below(64)));
      break;
    case 5: {  // a splice with another seed
      const std::string& other = rng.pick(kSeeds);
      s = s.substr(0, pos) + other.substr(rng.below(other.size() + 1));
      break;
    }
    case 6: {  // deep nesting
      const size_t depth = 1 + rng.below(rng.chance(10) ? 20000 : 100);
      const std::string open = rng.chance(50) ? "{" : (rng.chance(50) ? "(" : "\\boxed{"),
                        close = open == "(" ? ")" : "}";
      std::string left, right;
      for (size_t i = 0; i < depth; ++i) {
        left += open;
        right += close;
      }
      s.insert(pos, left + (rng.chance(80) ? right : std::string()));
      break;
    }
    case 7: {  // grown large: one token or slice repeated
      const std::string piece = rng.chance(50) ? rng.pick(kTokens) : s.substr(pos, 1 + rng.below(32));
      std::string big;
      while (big.size() < (size_t{1} << (12 + rng.below(5))))
        big += piece.empty() ? "x" : piece;
      s.insert(pos, big);
      break;
    }
    case 8:  // two bytes swapped
      if (s.size() >= 2) std::swap(s[rng.below(s.size())], s[pos % s.size()]);
      break;
  }
}

[[noreturn]] void fail(const std::string& why, const std::string& input) {
  std::fprintf(stderr, "FAIL: %s\ninput (%zu bytes): ", why.c_str(), input.size());
  for (size_t i = 0; i < std::min<size_t>(input.size(), 300); ++i) {
    const unsigned char c = static_cast<unsigned char>(input[i]);
    if (c >= 0x20 && c < 0x7f)
      std::fputc(c, stderr);
    else
      std::fprintf(stderr, "\\x%02x", c);
  }
  std::fprintf(stderr, "\n");
  std::exit(1);
}

void inside(std::optional<std::string_view> v, const std::string& s, const char* what) {
  if (v && (v->data() < s.data() || v->data() + v->size() > s.data() + s.size()))
    fail(std::string(what) + " returned a view outside its input", s);
}

struct Targets {
  std::vector<std::pair<std::string, std::unique_ptr<rw::Reward>>> rewards;
  Targets() {
    rw::Registry r;
    rw::register_builtins(r);
    const std::vector<std::pair<std::string, aha::Json>> specs = {
        {"format", aha::Json::object()},
        {"format", {{"mode", "strict"}}},
        {"tag_count", aha::Json::object()},
        {"exact_match", {{"ignore_case", true}}},
        {"math_accuracy", aha::Json::object()},
        {"math_accuracy", {{"source", "boxed"}, {"tolerance", 1e-6}}},
        {"gsm8k", aha::Json::object()},
        {"countdown", aha::Json::object()},
        {"regex_match", {{"pattern", "-?\\d+(,\\d{3})*(\\.\\d+)?"}}},
        {"regex_match", {{"pattern", "^(a|aa)+$"}, {"in", "answer"}}},
        {"regex_match", {{"pattern", "<answer>.*?</answer>"}, {"mode", "full"}}},
        {"regex_match", {{"pattern", "\\p{Han}+|wait"}, {"in", "think"}, {"ignore_case", true}}},
        {"language_consistency", aha::Json::object()},
        {"language_consistency", {{"script", "cjk"}, {"unit", "letters"}, {"source", "completion"}}},
        {"length_penalty", {{"unit", "chars"}}},
    };
    for (const auto& [name, params] : specs)
      rewards.emplace_back(name + params.dump(), r.create(name, params));
  }
};

// The slowest step of one input, named in a failure for time.
struct Steps {
  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
  std::string slowest;
  double slowest_ms = 0;
  void done(const std::string& name) {
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - at).count();
    if (ms > slowest_ms) {
      slowest_ms = ms;
      slowest = name;
    }
    at = now;
  }
};

// Runs every parser and reward on `s` (with a ground truth cut from `other`) and checks the invariants.
void run_all(const std::string& s, const std::string& other, const Targets& t, Rng& rng, Steps& steps) {
  if (auto v = rw::parse_number(s); v && !std::isfinite(*v)) fail("parse_number gave a non-finite number", s);
  if (auto v = rw::gsm8k_reference(s); v && !std::isfinite(*v)) fail("gsm8k_reference not finite", s);
  inside(rw::last_boxed(s), s, "last_boxed");
  inside(rw::last_answer(s), s, "last_answer");
  inside(rw::think_block(s), s, "think_block");
  steps.done("parse_number, last_boxed, last_answer, think_block");
  for (auto src : {rw::AnswerSource::automatic, rw::AnswerSource::boxed, rw::AnswerSource::answer_tag}) {
    const auto a = rw::extract_answer(s, src);
    inside(a, s, "extract_answer");
    if (a) (void)rw::parse_number(*a);
  }
  steps.done("extract_answer");
  if (auto e = rw::parse_expression(s)) {
    if (!std::isfinite(e->value)) fail("parse_expression gave a non-finite value", s);
    for (int64_t n : e->numbers)
      if (n < 0) fail("parse_expression listed a negative literal", s);
    if (e->numbers.size() > s.size()) fail("parse_expression listed more numbers than characters", s);
  }
  for (auto unit : {rw::CountUnit::words, rw::CountUnit::letters}) {
    const auto c = rw::count_scripts(s, rw::script_bit(rw::Script::latin), unit);
    if (c.in_target < 0 || c.in_target > c.total || c.total > static_cast<int64_t>(s.size()))
      fail("count_scripts counts out of range", s);
  }
  steps.done("count_scripts");

  const std::string truth = other.substr(0, rng.below(std::min<size_t>(other.size(), 64) + 1));
  aha::Json fields = {{"answer", truth}, {"numbers", aha::Json::array()}, {"target", rng.below(200)}};
  for (size_t i = 0, n = rng.below(5); i < n; ++i)
    fields["numbers"].push_back(rng.below(100));
  if (rng.chance(30)) fields["answer"] = "#### " + truth;
  if (rng.chance(5)) fields = aha::Json::object();
  std::vector<rw::Sample> batch(1 + rng.below(3));
  for (auto& b : batch) {
    b.completion = s;
    b.prompt = rng.chance(50) ? "p" : "q";
    b.completion_tokens = static_cast<int64_t>(rng.below(4096));
    b.fields = &fields;
  }
  for (const auto& [name, reward] : t.rewards) {
    const auto scores = reward->score_batch(batch);
    if (scores.size() != batch.size()) fail(name + " returned the wrong number of scores", s);
    for (const auto& sc : scores) {
      if (!sc.value) continue;
      const double v = *sc.value;
      const bool unit_range =
          name.rfind("length_penalty", 0) == 0 ? (v >= -0.5 && v <= 0.5) : (v >= 0 && v <= 1);
      if (!std::isfinite(v) || !unit_range) fail(name + " scored " + std::to_string(v), s);
    }
    steps.done(name);
  }
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t iterations = 100000, seed = 20250105;
  double max_ms = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--seed=", 0) == 0) {
      seed = std::stoull(a.substr(7));
    } else if (a.rfind("--max-ms=", 0) == 0) {
      max_ms = std::stod(a.substr(9));
    } else {
      iterations = std::stoull(a);
    }
  }
  aha::log::set_console(false);
  Rng rng{seed};
  const Targets targets;
  std::vector<std::string> pool = kSeeds;  // the seeds and some of their mutants, mutated further
  uint64_t counts[3] = {0, 0, 0}, bytes = 0;
  double slowest = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t it = 0; it < iterations; ++it) {
    std::string s;
    const size_t kind = rng.below(10) < 2 ? 0 : (rng.below(10) < 3 ? 1 : 2);
    ++counts[kind];
    if (kind == 0) {
      s = random_bytes(rng);
    } else if (kind == 1) {
      s = random_tokens(rng);
    } else {
      s = rng.pick(pool);
      for (size_t m = 0, n = 1 + rng.below(rng.chance(70) ? 3 : 10); m < n; ++m)
        mutate(s, rng);
      if (s.size() > (size_t{1} << 20)) s.resize(size_t{1} << 20);
    }
    bytes += s.size();
    const auto t0 = std::chrono::steady_clock::now();
    Steps steps;
    try {
      run_all(s, rng.pick(pool), targets, rng, steps);
    } catch (const std::exception& e) {
      fail(std::string("an exception escaped: ") + e.what(), s);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    slowest = std::max(slowest, ms);
    if (ms > max_ms)
      fail("took " + std::to_string(ms) + " ms (limit " + std::to_string(max_ms) + "), " +
               std::to_string(steps.slowest_ms) + " of them in " + steps.slowest,
           s);
    if (kind == 2 && pool.size() < 512 && rng.chance(2) && s.size() < 4096) pool.push_back(s);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "fuzz_rewards: seed %llu, %llu inputs (%llu random bytes, %llu random tokens, %llu mutated), %.1f MB, "
      "in %.1f s\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(iterations),
      static_cast<unsigned long long>(counts[0]), static_cast<unsigned long long>(counts[1]),
      static_cast<unsigned long long>(counts[2]), static_cast<double>(bytes) / 1e6, seconds);
  std::printf("  %zu rewards and 9 parsers per input; slowest input %.1f ms (limit %.0f ms), mean %.3f ms\n",
              targets.rewards.size(), slowest, max_ms, 1000.0 * seconds / static_cast<double>(iterations));
  return 0;
}
