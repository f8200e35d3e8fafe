#include "aha/rl/tasks.h"

#include <algorithm>
#include <cctype>
#include <random>

#include "aha/core/error.h"
#include "aha/reward/reward.h"

namespace aha::rl {

uint64_t item_seed(uint64_t seed, uint64_t index, uint64_t salt) {
  uint64_t z =
      seed * 0x9E3779B97F4A7C15ull ^ (index + 0x632BE59BD9B4E019ull) ^ (salt * 0xD1B54A32D192ED03ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

// Uniform integer in [lo, hi] from a 64-bit engine, the same on every platform (no std distributions).
int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int64_t>(rng() % span);
}

double unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

class Arithmetic : public Task {
 public:
  explicit Arithmetic(const Json& p) {
    reward::check_param_keys(p, "arithmetic",
                             {"min_terms", "max_terms", "min_operand", "max_operand", "operators"});
    min_terms_ = static_cast<int64_t>(reward::param_number(p, "arithmetic", "min_terms", 2));
    max_terms_ = static_cast<int64_t>(reward::param_number(p, "arithmetic", "max_terms", 2));
    min_operand_ = static_cast<int64_t>(reward::param_number(p, "arithmetic", "min_operand", 0));
    max_operand_ = static_cast<int64_t>(reward::param_number(p, "arithmetic", "max_operand", 99));
    operators_ = reward::param_string(p, "arithmetic", "operators", "+");
    AHA_CHECK(min_terms_ >= 2 && max_terms_ >= min_terms_,
              "task arithmetic: need 2 <= min_terms <= max_terms, got ", min_terms_, " and ", max_terms_);
    AHA_CHECK(min_operand_ >= 0 && max_operand_ >= min_operand_,
              "task arithmetic: need 0 <= min_operand <= max_operand, got ", min_operand_, " and ",
              max_operand_);
    AHA_CHECK(!operators_.empty() && operators_.find_first_not_of("+-*") == std::string::npos,
              "task arithmetic: operators must be some of \"+-*\", got \"", operators_, "\"");
  }

  Json make(uint64_t seed, uint64_t index) const override {
    std::mt19937_64 rng(item_seed(seed, index, 1));
    const int64_t terms = uniform(rng, min_terms_, max_terms_);
    std::string q = std::to_string(uniform(rng, min_operand_, max_operand_));
    // Evaluated with the usual precedence: a running sum of products.
    int64_t sum = 0, product = std::stoll(q);
    for (int64_t t = 1; t < terms; ++t) {
      const char op =
          operators_[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(operators_.size()) - 1))];
      const int64_t x = uniform(rng, min_operand_, max_operand_);
      q += op;
      q += std::to_string(x);
      if (op == '*') {
        product *= x;
      } else {
        sum += product;
        product = op == '+' ? x : -x;
      }
    }
    sum += product;
    return Json{{"question", q}, {"answer", std::to_string(sum)}};
  }

  std::string alphabet() const override { return "0123456789+-*"; }

 private:
  int64_t min_terms_, max_terms_, min_operand_, max_operand_;
  std::string operators_;
};

class Countdown : public Task {
 public:
  explicit Countdown(const Json& p) {
    reward::check_param_keys(p, "countdown", {"count", "max_number", "max_target"});
    count_ = static_cast<int64_t>(reward::param_number(p, "countdown", "count", 3));
    max_number_ = static_cast<int64_t>(reward::param_number(p, "countdown", "max_number", 99));
    max_target_ = static_cast<int64_t>(reward::param_number(p, "countdown", "max_target", 100));
    AHA_CHECK(count_ >= 2 && count_ <= 6, "task countdown: count must be 2..6, got ", count_);
    AHA_CHECK(max_number_ >= 1 && max_target_ >= 1, "task countdown: max_number and max_target must be >= 1");
  }

  Json make(uint64_t seed, uint64_t index) const override {
    std::mt19937_64 rng(item_seed(seed, index, 2));
    for (int attempt = 0;; ++attempt) {
      std::vector<int64_t> numbers;
      for (int64_t i = 0; i < count_; ++i)
        numbers.push_back(uniform(rng, 1, max_number_));
      // Combine the numbers in a random order with random operators; keep exact, positive results.
      std::vector<std::pair<int64_t, std::string>> pool;
      for (int64_t n : numbers)
        pool.push_back({n, std::to_string(n)});
      bool ok = true;
      while (pool.size() > 1 && ok) {
        const auto i = static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(pool.size()) - 1));
        auto a = pool[i];
        pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
        const auto j = static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(pool.size()) - 1));
        auto b = pool[j];
        pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(j));
        std::pair<int64_t, std::string> c;
        switch (uniform(rng, 0, 3)) {
          case 0:
            c = {a.first + b.first, "(" + a.second + " + " + b.second + ")"};
            break;
          case 1:
            if (a.first < b.first) std::swap(a, b);
            c = {a.first - b.first, "(" + a.second + " - " + b.second + ")"};
            break;
          case 2:
            c = {a.first * b.first, "(" + a.second + " * " + b.second + ")"};
            break;
          default:
            if (a.first < b.first) std::swap(a, b);
            if (b.first == 0 || a.first % b.first != 0) {
              c = {a.first + b.first, "(" + a.second + " + " + b.second + ")"};
            } else {
              c = {a.first / b.first, "(" + a.second + " / " + b.second + ")"};
            }
        }
        pool.push_back(c);
      }
      const int64_t target = pool[0].first;
      if (target < 1 || target > max_target_) {
        AHA_CHECK(attempt < 100000, "task countdown: no target within 1..", max_target_, " found");
        continue;
      }
      std::string expr = pool[0].second;
      if (expr.size() >= 2 && expr.front() == '(') expr = expr.substr(1, expr.size() - 2);
      std::string list = "[";
      for (size_t i = 0; i < numbers.size(); ++i)
        list += (i ? ", " : "") + std::to_string(numbers[i]);
      list += "]";
      return Json{{"question", "Using the numbers " + list + ", create an equation that equals " +
                                   std::to_string(target) + "."},
                  {"numbers", numbers},
                  {"target", target},
                  {"answer", expr}};
    }
  }

  std::string alphabet() const override { return "0123456789+-*/() ,.[]"; }

 private:
  int64_t count_, max_number_, max_target_;
};

const char* const kLetters = "abcdefghijklmnopqrstuvwxyz";

std::string random_word(std::mt19937_64& rng, int64_t min_len, int64_t max_len) {
  std::string w;
  const int64_t n = uniform(rng, min_len, max_len);
  for (int64_t i = 0; i < n; ++i)
    w += kLetters[uniform(rng, 0, 25)];
  return w;
}

std::string random_digits(std::mt19937_64& rng, int64_t min_len, int64_t max_len) {
  std::string w;
  const int64_t n = uniform(rng, min_len, max_len);
  for (int64_t i = 0; i < n; ++i)
    w += static_cast<char>('0' + uniform(rng, 0, 9));
  return w;
}

// Groups of letters and digits joined by symbols, with at least one group of letters ("ab+3", "7,xy-2"):
// strings that look like expressions but are never arithmetic questions.
std::string random_mixed(std::mt19937_64& rng) {
  const char* const symbols = "+-*/,.";
  const int64_t groups = uniform(rng, 2, 3);
  const int64_t letters_at = uniform(rng, 0, groups - 1);
  std::string w;
  for (int64_t g = 0; g < groups; ++g) {
    if (g > 0) w += symbols[uniform(rng, 0, 5)];
    w += g == letters_at || uniform(rng, 0, 1) ? random_word(rng, 1, 3) : random_digits(rng, 1, 2);
  }
  return w;
}

// One think/answer document of a string task over letters, digits or (with `mixed`) mixed strings; never
// arithmetic.
std::string layout_document(std::mt19937_64& rng, bool mixed) {
  // Strings to copy, reverse, sort, count or echo (never sums).
  const int64_t shape = uniform(rng, 0, mixed ? 2 : 1);
  const std::string w = shape == 2   ? random_mixed(rng)
                        : shape == 1 ? random_word(rng, 2, 6)
                                     : random_digits(rng, 1, 4);
  std::string question, think, answer;
  int64_t kind = uniform(rng, 0, 4);
  // Only words are echoed: an echoed digit or mixed string would teach "X=X" next to the facts' "a+b=c".
  if (kind == 4 && shape != 1) kind = 1;
  switch (kind) {
    case 0:
      question = "reverse " + w;
      answer = std::string(w.rbegin(), w.rend());
      think = question + "=" + answer;
      break;
    case 1:
      question = "copy " + w;
      answer = w;
      think = question + "=" + answer;
      break;
    case 2:
      question = "sort " + w;
      answer = w;
      std::sort(answer.begin(), answer.end());
      think = question + "=" + answer;
      break;
    case 3:
      question = "count " + w;
      answer = std::to_string(w.size());
      think = question + "=" + answer;
      break;
    default:  // echo: the bare string
      question = w;
      answer = w;
      think = question + "=" + answer;
      break;
  }
  return "User: " + question + "\nAssistant: <think> " + think + " </think> <answer>" + answer + "</answer>";
}

}  // namespace

std::unique_ptr<Task> make_task(const std::string& name, const Json& params) {
  AHA_CHECK(params.is_object() || params.is_null(), "task ", name, ": params must be a JSON object");
  const Json p = params.is_null() ? Json::object() : params;
  if (name == "arithmetic") return std::make_unique<Arithmetic>(p);
  if (name == "countdown") return std::make_unique<Countdown>(p);
  AHA_FAIL("unknown task '", name, "' (built-in tasks: arithmetic, countdown)");
}

std::vector<std::string> task_names() {
  return {"arithmetic", "countdown"};
}
std::vector<std::string> corpus_names() {
  return {"r1_base"};
}

Corpus::Corpus(const std::string& name, const Json& params, std::unordered_set<std::string> exclude)
    : exclude_(std::move(exclude)) {
  AHA_CHECK(name == "r1_base", "unknown corpus '", name, "' (built-in corpora: r1_base)");
  const Json p = params.is_null() ? Json::object() : params;
  reward::check_param_keys(p, "r1_base", {"arithmetic", "fact_share", "held_out_facts", "mixed_strings"});
  arithmetic_ = make_task("arithmetic", p.value("arithmetic", Json::object()));
  fact_share_ = reward::param_number(p, "r1_base", "fact_share", 0.5);
  AHA_CHECK(fact_share_ >= 0 && fact_share_ <= 1, "corpus r1_base: fact_share must be in [0, 1], got ",
            fact_share_);
  // Whether the plain-form facts may include the held-out questions (the base then knows every sum, as a base
  // model knows its arithmetic; RL still never trains on them), and whether the layout runs on mixed strings.
  held_out_facts_ = reward::param_bool(p, "r1_base", "held_out_facts", false);
  mixed_strings_ = reward::param_bool(p, "r1_base", "mixed_strings", false);
}

std::string Corpus::document(uint64_t seed, uint64_t index) const {
  std::mt19937_64 rng(item_seed(seed, index, 3));
  if (unit(rng) < fact_share_) {
    // One to six facts in a line, so that a fact is known anywhere in a text, not only at its start.
    std::string doc;
    const int64_t facts = uniform(rng, 1, 6);
    for (uint64_t k = 0; static_cast<int64_t>(k) < facts * 100 && doc.size() < 200; ++k) {
      Json fact = arithmetic_->make(item_seed(seed, index, 4), k);
      const std::string q = fact["question"].get<std::string>();
      if (!held_out_facts_ && exclude_.count(q)) continue;
      if (!doc.empty()) doc += ' ';
      doc += q + "=" + fact["answer"].get<std::string>();
      if (std::count(doc.begin(), doc.end(), '=') >= facts) break;
    }
    return doc;
  }
  return layout_document(rng, mixed_strings_);
}

Json task_tokenizer_json() {
  std::vector<std::string> vocab = {"<pad>",    "<bos>",    "<eos>",    "<think>",
                                    "</think>", "<answer>", "</answer>"};
  const std::string chars = "0123456789+-*/=()[],.:?! \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (char c : chars)
    vocab.push_back(std::string(1, c));
  return Json{{"type", "char"}, {"vocab", vocab}, {"bos", "<bos>"},
              {"eos", "<eos>"}, {"pad", "<pad>"}, {"special", Json::array()}};
}

}  // namespace aha::rl
