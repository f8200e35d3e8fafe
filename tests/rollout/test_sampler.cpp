// The sampler against full recomputation: greedy tokens, recorded log-probabilities, batch independence,
// seeds, stops, and compaction of finished rows.
#include "aha/rollout/sampler.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <random>
#include <set>

#include "../model/model_fixtures.h"
#include "aha/model/checkpoint.h"
#include "aha/text/tokenizer.h"

namespace {

using aha::rollout::FinishReason;
using aha::rollout::SamplingParams;

aha::model::Transformer fixture_model() {
  static auto model = aha::model::load_pretrained(aha::test::model_fixture("yarn_qlora_groups"));
  return model;
}

std::vector<std::vector<int64_t>> random_prompts(int64_t count, int64_t min_len, int64_t max_len,
                                                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int64_t> p(
        static_cast<size_t>(min_len + static_cast<int64_t>(rng() % (max_len - min_len + 1))));
    for (auto& t : p)
      t = 2 + static_cast<int64_t>(rng() % 500);  // 0 and 1 are bos/eos
    prompts.push_back(p);
  }
  return prompts;
}

// Logits of the last position of `seq`, by a full forward pass (no cache).
at::Tensor last_logits(aha::model::TransformerImpl& model, const std::vector<int64_t>& seq) {
  aha::model::ForwardInput in;
  in.input_ids = at::tensor(seq, at::kLong).view({1, -1});
  return model.forward(in).logits[0][-1];
}

TEST(Sampler, GreedyWithCacheEqualsFullRecomputationOn100MixedPrompts) {
  torch::NoGradGuard no_grad;
  auto model = fixture_model();
  const auto prompts = random_prompts(100, 1, 24, 7);
  SamplingParams p;
  p.temperature = 0;
  p.max_new_tokens = 6;
  p.ignore_eos = true;
  const auto result = aha::rollout::Sampler().generate(*model, prompts, p);
  ASSERT_EQ(result.completions.size(), 100u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> seq = prompts[i];
    for (int64_t step = 0; step < p.max_new_tokens; ++step) {
      const int64_t want = last_logits(*model, seq).argmax().item<int64_t>();
      ASSERT_EQ(result.completions[i].tokens[step], want) << "prompt " << i << " step " << step;
      seq.push_back(want);
    }
    EXPECT_EQ(result.completions[i].finish, FinishReason::length);
  }
}

TEST(Sampler, RecordedLogprobsEqualATeacherForcedForward) {
  torch::NoGradGuard no_grad;
  auto model = fixture_model();
  const auto prompts = random_prompts(6, 3, 12, 11);
  SamplingParams p;
  p.temperature = 0.7;
  p.top_k = 50;
  p.top_p = 0.95;
  p.n = 3;
  p.max_new_tokens = 10;
  p.seed = 5;
  const auto result = aha::rollout::Sampler().generate(*model, prompts, p);
  double worst = 0;
  for (const auto& c : result.completions) {
    std::vector<int64_t> seq = prompts[c.prompt];
    const int64_t plen = static_cast<int64_t>(seq.size());
    seq.insert(seq.end(), c.tokens.begin(), c.tokens.end());
    aha::model::ForwardInput in;
    in.input_ids = at::tensor(seq, at::kLong).view({1, -1});
    const at::Tensor logp = at::log_softmax(model->forward(in).logits[0] / p.temperature, -1);
    for (size_t t = 0; t < c.tokens.size(); ++t) {
      const double want = logp[plen - 1 + static_cast<int64_t>(t)][c.tokens[t]].item<double>();
      worst = std::max(worst, std::abs(want - c.logprobs[t]));
    }
  }
  EXPECT_LE(worst, 1e-5);
}

TEST(Sampler, BatchedEqualsOneAtATimeAndSeedsReproduce) {
  torch::NoGradGuard no_grad;
  auto model = fixture_model();
  const auto prompts = random_prompts(8, 2, 15, 3);
  std::vector<uint64_t> seeds;
  for (uint64_t i = 0; i < prompts.size(); ++i)
    seeds.push_back(1000 + 17 * i);
  SamplingParams p;
  p.temperature = 1.0;
  p.min_p = 0.02;
  p.n = 4;
  p.max_new_tokens = 12;
  const auto batched = aha::rollout::Sampler().generate(*model, prompts, p, {.prompt_seeds = seeds});
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto alone =
        aha::rollout::Sampler().generate(*model, {prompts[i]}, p, {.prompt_seeds = {seeds[i]}});
    for (int64_t j = 0; j < p.n; ++j) {
      const auto& a = batched.completions[i * p.n + j];
      const auto& b = alone.completions[j];
      EXPECT_EQ(a.tokens, b.tokens) << "prompt " << i << " sample " << j;
      EXPECT_EQ(a.finish, b.finish);
    }
  }
  const auto again = aha::rollout::Sampler().generate(*model, prompts, p, {.prompt_seeds = seeds});
  for (size_t k = 0; k < again.completions.size(); ++k)
    EXPECT_EQ(again.completions[k].tokens, batched.completions[k].tokens);
  // The G samples of a prompt differ from one another, and another seed changes them.
  EXPECT_NE(batched.completions[0].tokens, batched.completions[1].tokens);
  seeds[0] += 1;
  const auto other = aha::rollout::Sampler().generate(*model, {prompts[0]}, p, {.prompt_seeds = {seeds[0]}});
  EXPECT_NE(other.completions[0].tokens, batched.completions[0].tokens);
}

TEST(Sampler, StopsAtEosStopIdsAndLengthAndCompactsFinishedRows) {
  torch::NoGradGuard no_grad;
  auto model = fixture_model();
  const auto prompts = random_prompts(10, 2, 9, 21);
  SamplingParams p;
  p.temperature = 1.0;
  p.n = 4;
  p.max_new_tokens = 30;
  // Stop on a handful of common ids so rows finish at different steps.
  for (int64_t id = 2; id < 80; ++id)
    p.stop_token_ids.push_back(id);
  const auto result = aha::rollout::Sampler().generate(*model, prompts, p);
  int64_t stopped = 0, fed = 0;
  for (const auto& c : result.completions) {
    ASSERT_FALSE(c.tokens.empty());
    ASSERT_EQ(c.tokens.size(), c.logprobs.size());
    if (c.finish == FinishReason::stop) {
      ++stopped;
      EXPECT_TRUE(c.tokens.back() >= 2 && c.tokens.back() < 80);
      for (size_t t = 0; t + 1 < c.tokens.size(); ++t)
        EXPECT_FALSE(c.tokens[t] >= 2 && c.tokens[t] < 80);
    } else if (c.finish == FinishReason::length) {
      EXPECT_EQ(static_cast<int64_t>(c.tokens.size()), p.max_new_tokens);
    } else {
      EXPECT_EQ(c.tokens.back(), 1);  // the fixture's eos
    }
    fed += static_cast<int64_t>(c.tokens.size()) - 1;  // every token but the last is fed back
  }
  EXPECT_GT(stopped, 0);
  // A finished row is never computed again: the decode steps did exactly the rows still running.
  EXPECT_EQ(result.decode_row_steps, fed);
  EXPECT_EQ(result.decode_tokens, fed + static_cast<int64_t>(result.completions.size()));
  EXPECT_GT(result.decode_tokens_per_second(), 0);
}

TEST(Sampler, StopStringsEndACompletionOnceTheirTextAppears) {
  torch::NoGradGuard no_grad;
  const auto tokenizer = aha::text::load_tokenizer(std::string(AHA_TEST_DATA) + "/text/bpe_seq");
  auto config = aha::model::load_hf_config(aha::test::model_fixture("plain_no_qlora") + "/config.json");
  config.vocab_size = tokenizer->vocab_size();
  aha::model::Transformer model(config);
  model->init_weights(4);
  const std::vector<std::vector<int64_t>> prompts = {
      tokenizer->encode("Natalia sold clips to 48 of her friends")};
  SamplingParams p;
  p.temperature = 1.0;  // sampled, seeded: the same tokens come out until the stop
  p.seed = 9;
  p.max_new_tokens = 12;
  p.ignore_eos = true;
  const auto free_run = aha::rollout::Sampler().generate(*model, prompts, p);
  const auto& tokens = free_run.completions[0].tokens;
  ASSERT_EQ(tokens.size(), 12u);
  // A stop string completed by token k of the free run: its text, when that text occurs nowhere before it.
  size_t k = 0;
  std::string stop;
  for (size_t cand = 2; cand < tokens.size() && k == 0; ++cand) {
    const std::string before = tokenizer->decode(std::span<const int64_t>(tokens.data(), cand));
    const std::string with = tokenizer->decode(std::span<const int64_t>(tokens.data(), cand + 1));
    if (with.size() <= before.size() || with.compare(0, before.size(), before) != 0) continue;
    const std::string piece = with.substr(before.size());
    if (before.find(piece) == std::string::npos) {
      k = cand + 1;
      stop = piece;
    }
  }
  ASSERT_GT(k, 0u) << "no token of the free run brings new text";
  p.stop_strings = {stop};
  const auto stopped = aha::rollout::Sampler().generate(*model, prompts, p, {.tokenizer = tokenizer.get()});
  const auto& c = stopped.completions[0];
  EXPECT_EQ(c.finish, FinishReason::stop);
  EXPECT_EQ(c.tokens, std::vector<int64_t>(tokens.begin(), tokens.begin() + static_cast<int64_t>(k)));
  EXPECT_THAT(tokenizer->decode(c.tokens), ::testing::EndsWith(stop));
  EXPECT_THROW(aha::rollout::Sampler().generate(*model, prompts, p),
               aha::Error);  // stop strings need a tokenizer
}

TEST(Sampling, FiltersKeepOnlyTheAllowedTokens) {
  // probs 0.5, 0.3, 0.15, 0.05
  const at::Tensor logits = at::tensor({0.5, 0.3, 0.15, 0.05}, at::kDouble).log().to(at::kFloat).view({1, 4});
  auto draws_of = [&](SamplingParams p) {
    std::set<int64_t> seen;
    for (int i = 0; i < 200; ++i) {
      const double u = (i + 0.5) / 200.0;
      seen.insert(aha::rollout::sample(logits, p, {u}).tokens.item<int64_t>());
    }
    return seen;
  };
  SamplingParams p;
  EXPECT_EQ(draws_of(p), (std::set<int64_t>{0, 1, 2, 3}));
  p.top_k = 2;
  EXPECT_EQ(draws_of(p), (std::set<int64_t>{0, 1}));
  p = {};
  p.top_p = 0.7;  // 0.5 < 0.7 <= 0.8: tokens 0 and 1
  EXPECT_EQ(draws_of(p), (std::set<int64_t>{0, 1}));
  p = {};
  p.min_p = 0.25;  // keep p >= 0.125
  EXPECT_EQ(draws_of(p), (std::set<int64_t>{0, 1, 2}));
  p = {};
  p.temperature = 0;
  const auto greedy = aha::rollout::sample(logits, p, {});
  EXPECT_EQ(greedy.tokens.item<int64_t>(), 0);
  EXPECT_NEAR(greedy.logprobs.item<float>(), std::log(0.5), 1e-6);
  // The recorded logprob is the unfiltered one at the temperature.
  p = {};
  p.top_k = 1;
  p.temperature = 2.0;
  const auto s = aha::rollout::sample(logits, p, {0.9});
  EXPECT_EQ(s.tokens.item<int64_t>(), 0);
  const at::Tensor want = at::log_softmax(logits / 2.0, -1)[0][0];
  EXPECT_NEAR(s.logprobs.item<float>(), want.item<float>(), 1e-6);
  // Bad parameters are named.
  p = {};
  p.top_p = 0;
  EXPECT_THROW(aha::rollout::validate(p), aha::Error);
}

// Without filters the CPU takes a one-pass draw: it must pick what the tensor formulation picks, the first
// token whose running (double) mass exceeds u * total, and record log softmax(logits / T) there; a token of
// zero probability (exp underflow) is never chosen.
TEST(Sampling, UnfilteredDrawIsTheFirstTokenWhoseMassExceedsTheDraw) {
  at::manual_seed(12);
  at::Tensor logits = at::randn({6, 300}) * 3;
  logits[2].slice(0, 0, 150).fill_(-1e4);  // probabilities that underflow to 0 ahead of the real ones
  SamplingParams p;
  p.temperature = 0.8;
  std::vector<double> u = {0.0, 0.1, 0.37, 0.5, 0.999, 0.9999999};
  const auto got = aha::rollout::sample(logits, p, u);
  const at::Tensor logp = at::log_softmax(logits / p.temperature, -1);
  const at::Tensor cdf = logp.exp().to(at::kDouble).cumsum(-1);
  for (int64_t r = 0; r < 6; ++r) {
    const double target = u[r] * cdf[r][-1].item<double>();
    const int64_t want = (cdf[r] > target).to(at::kInt).argmax().item<int64_t>();
    EXPECT_EQ(got.tokens[r].item<int64_t>(), want) << "row " << r;
    EXPECT_GT(logp[r][want].exp().item<float>(), 0.0f) << "row " << r;
    EXPECT_EQ(got.logprobs[r].item<float>(), logp[r][want].item<float>()) << "row " << r;
  }
}

}  // namespace
