// Task generators, the pretraining corpus and the prompt source: determinism, held-out splits that training
// never draws from, JSONL field mapping, and positions that resume exactly.
#include "aha/rl/prompts.h"
#include "aha/rl/tasks.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "../support/error_of.h"
#include "aha/reward/countdown.h"
#include "aha/text/char_tokenizer.h"

namespace aha::rl {
namespace {

TEST(Tasks, ArithmeticIsSeededAndCorrect) {
  auto t = make_task("arithmetic", Json{{"min_terms", 2}, {"max_terms", 4}, {"operators", "+-*"}});
  for (uint64_t i = 0; i < 200; ++i) {
    Json a = t->make(7, i);
    EXPECT_EQ(a.dump(), t->make(7, i).dump());
    // Evaluate with the usual precedence, independently of the generator.
    const std::string q = a["question"];
    std::vector<int64_t> terms;
    std::vector<char> ops;
    size_t pos = 0;
    while (pos < q.size()) {
      size_t end = q.find_first_of("+-*", pos);
      terms.push_back(std::stoll(q.substr(pos, end - pos)));
      if (end == std::string::npos) break;
      ops.push_back(q[end]);
      pos = end + 1;
    }
    std::vector<int64_t> summands = {terms[0]};
    for (size_t k = 0; k < ops.size(); ++k) {
      if (ops[k] == '*')
        summands.back() *= terms[k + 1];
      else
        summands.push_back(ops[k] == '+' ? terms[k + 1] : -terms[k + 1]);
    }
    int64_t sum = 0;
    for (int64_t s : summands)
      sum += s;
    EXPECT_EQ(a["answer"].get<std::string>(), std::to_string(sum)) << q;
    EXPECT_GE(terms.size(), 2u);
    EXPECT_LE(terms.size(), 4u);
  }
  EXPECT_NE(t->make(7, 0).dump(), t->make(8, 0).dump());
}

TEST(Tasks, CountdownTargetsAreReachableWithTheGivenNumbers) {
  auto t = make_task("countdown", Json{{"count", 4}});
  for (uint64_t i = 0; i < 200; ++i) {
    Json c = t->make(3, i);
    const int64_t target = c["target"];
    EXPECT_GE(target, 1);
    EXPECT_LE(target, 100);
    ASSERT_EQ(c["numbers"].size(), 4u);
    // The reference solution parses with the reward's own parser, uses the numbers and hits the target.
    auto parsed = reward::parse_expression(c["answer"].get<std::string>());
    ASSERT_TRUE(parsed.has_value()) << c["answer"];
    EXPECT_NEAR(parsed->value, static_cast<double>(target), 1e-9) << c["answer"];
    auto used = parsed->numbers;
    std::vector<int64_t> given = c["numbers"].get<std::vector<int64_t>>();
    std::sort(used.begin(), used.end());
    std::sort(given.begin(), given.end());
    EXPECT_EQ(used, given);
  }
}

TEST(Tasks, BadParametersAreNamed) {
  EXPECT_NE(test::error_of([] {
              make_task("arithmetic", Json{{"max_term", 3}});
            }).find("max_term"),
            std::string::npos);
  EXPECT_NE(test::error_of([] {
              make_task("arithmetic", Json{{"operators", "+/"}});
            }).find("operators"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { make_task("sudoku", Json::object()); }).find("arithmetic, countdown"),
            std::string::npos);
}

TEST(Corpus, NeverShowsHeldOutQuestionsNorArithmeticInTheLayout) {
  DataSection d;
  d.task_params = Json{{"max_operand", 9}};
  d.eval_size = 20;
  std::vector<std::string> held = held_out_questions(d);
  ASSERT_EQ(held.size(), 20u);
  std::unordered_set<std::string> exclude(held.begin(), held.end());
  Corpus c("r1_base", Json{{"arithmetic", d.task_params}}, exclude);
  int facts = 0, layouts = 0;
  for (uint64_t i = 0; i < 3000; ++i) {
    const std::string doc = c.document(1, i);
    EXPECT_EQ(doc, c.document(1, i));
    if (doc.find("<think>") != std::string::npos) {
      ++layouts;
      // Layout documents are string tasks: no operator in the question.
      const std::string q = doc.substr(0, doc.find('\n'));
      EXPECT_EQ(q.find_first_of("+*="), std::string::npos) << doc;
    } else {
      ++facts;
      // One or more "a+b=c" separated by spaces, none of them a held-out question.
      size_t start = 0;
      while (start < doc.size()) {
        const size_t end = std::min(doc.find(' ', start), doc.size());
        const std::string fact = doc.substr(start, end - start);
        ASSERT_NE(fact.find('='), std::string::npos) << doc;
        EXPECT_EQ(exclude.count(fact.substr(0, fact.find('='))), 0u)
            << "held-out question in the corpus: " << doc;
        start = end + 1;
      }
    }
  }
  EXPECT_GT(facts, 1200);
  EXPECT_GT(layouts, 1200);
  // The task vocabulary covers every document.
  auto tok = text::CharTokenizer::from_json(task_tokenizer_json(), "task");
  for (uint64_t i = 0; i < 200; ++i)
    EXPECT_NO_THROW(tok.encode(c.document(2, i)));
}

TEST(Corpus, HeldOutFactsShowsTheHeldOutSumsInPlainFormOnly) {
  DataSection d;
  d.task_params = Json{{"max_operand", 9}};
  d.eval_size = 20;
  std::vector<std::string> held = held_out_questions(d);
  std::unordered_set<std::string> exclude(held.begin(), held.end());
  Corpus c("r1_base", Json{{"arithmetic", d.task_params}, {"held_out_facts", true}}, exclude);
  std::unordered_set<std::string> seen;
  for (uint64_t i = 0; i < 3000; ++i) {
    const std::string doc = c.document(1, i);
    if (doc.find("<think>") != std::string::npos) {
      EXPECT_EQ(doc.substr(0, doc.find('\n')).find_first_of("+*="), std::string::npos) << doc;
      continue;
    }
    size_t start = 0;
    while (start < doc.size()) {  // "a+b=c" facts separated by spaces
      const size_t end = std::min(doc.find(' ', start), doc.size());
      const std::string question = doc.substr(start, doc.find('=', start) - start);
      if (exclude.count(question)) seen.insert(question);
      start = end + 1;
    }
  }
  EXPECT_EQ(seen.size(), held.size()) << "every held-out sum appears as a plain fact";
  EXPECT_NE(test::error_of([&] {
              Corpus("r1_base", Json{{"held_out_facts", 1}}, {});
            }).find("held_out_facts"),
            std::string::npos);
}

TEST(Corpus, MixedStringsCarrySymbolsButNeverAnArithmeticQuestion) {
  Corpus plain("r1_base", Json::object(), {});
  Corpus mixed("r1_base", Json{{"mixed_strings", true}}, {});
  int with_symbols = 0, layouts = 0;
  for (uint64_t i = 0; i < 3000; ++i) {
    const std::string doc = mixed.document(1, i);
    const std::string before = plain.document(1, i);
    if (before.find("<think>") == std::string::npos) {
      EXPECT_EQ(doc, before) << "the facts are the same documents";
      continue;
    }
    ++layouts;
    const std::string line = doc.substr(0, doc.find('\n'));  // "User: <verb> <string>" or "User: <word>"
    const std::string w = line.substr(line.rfind(' ') + 1);
    if (w.find_first_of("+-*/,.") == std::string::npos) continue;
    ++with_symbols;
    EXPECT_NE(line.find(' ', 6), std::string::npos) << "a mixed string is never echoed bare: " << doc;
    EXPECT_NE(w.find_first_of("abcdefghijklmnopqrstuvwxyz"), std::string::npos)
        << "a mixed string has a group of letters, so it is never an arithmetic question: " << doc;
  }
  EXPECT_GT(with_symbols, layouts / 5);
  EXPECT_NE(test::error_of([&] {
              Corpus("r1_base", Json{{"mixed_strings", "yes"}}, {});
            }).find("mixed_strings"),
            std::string::npos);
}

TEST(PromptSource, TaskTrainingNeverDrawsHeldOutQuestionsAndResumes) {
  DataSection d;
  d.task_params = Json{{"max_operand", 9}};
  d.eval_size = 30;
  d.template_name = "Q: {question}\nA:";
  PromptSource a(d);
  ASSERT_EQ(a.eval().size(), 30u);
  std::set<std::string> held;
  for (const auto& p : a.eval())
    held.insert(p.fields["question"]);
  EXPECT_EQ(held.size(), 30u);
  EXPECT_EQ(a.eval()[0].text, "Q: " + a.eval()[0].fields["question"].get<std::string>() + "\nA:");
  auto first = a.next(50);
  for (const auto& p : first)
    EXPECT_EQ(held.count(p.fields["question"]), 0u);
  const Json pos = a.state();
  auto more = a.next(10);
  PromptSource b(d);
  b.restore(pos);
  auto again = b.next(10);
  for (size_t i = 0; i < 10; ++i)
    EXPECT_EQ(more[i].fields, again[i].fields);
}

TEST(PromptSource, JsonlFieldMappingSplitAndEpochs) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("aha_prompts_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "p.jsonl").string();
  {
    std::ofstream f(path);
    for (int i = 0; i < 12; ++i)
      f << "{\"q\": \"what is " << i << "?\", \"gold\": " << i << ", \"extra\": 1}\n";
  }
  DataSection d;
  d.source = "jsonl";
  d.path = path;
  d.prompt_field = "q";
  d.answer_field = "gold";
  d.eval_size = 4;
  d.template_name = "plain";
  PromptSource s(d);
  ASSERT_EQ(s.eval().size(), 4u);
  EXPECT_EQ(s.train_size(), 8);
  std::set<std::string> eval_q, train_q;
  for (const auto& p : s.eval())
    eval_q.insert(p.text);
  auto epoch1 = s.next(8);
  for (const auto& p : epoch1) {
    train_q.insert(p.text);
    EXPECT_EQ(p.fields["question"].dump(), p.fields["q"].dump());
    EXPECT_EQ(p.fields["answer"].dump(), p.fields["gold"].dump());
    EXPECT_EQ(p.fields["extra"].get<int>(), 1);
  }
  EXPECT_EQ(train_q.size(), 8u);  // each training record once per epoch
  for (const auto& q : eval_q)
    EXPECT_EQ(train_q.count(q), 0u);
  auto epoch2 = s.next(8);
  std::set<std::string> second;
  for (const auto& p : epoch2)
    second.insert(p.text);
  EXPECT_EQ(second, train_q);
  // A record without the prompt field names the file and line.
  {
    std::ofstream f(path, std::ios::app);
    f << "{\"question\": \"no q here\"}\n";
  }
  EXPECT_NE(test::error_of([&] { PromptSource bad(d); }).find("p.jsonl:13: no field \"q\""),
            std::string::npos);
}

}  // namespace
}  // namespace aha::rl
