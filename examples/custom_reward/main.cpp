// A reward defined in C++ by a program that links aha: registered in the program's own Registry next to the
// built-ins, then used by name in the reward section of a run config, like any other.
// Prints each sample's scores; exits non-zero when they are not the expected ones.
#include <aha/core/config.h>
#include <aha/reward/reward.h>
#include <aha/reward/reward_set.h>
#include <aha/rl/run_options.h>

#include <cstdio>
#include <memory>

// 1 when the completion stays within `limit` tokens, with the count as a logged extra.
class ShortAnswer : public aha::reward::Reward {
 public:
  explicit ShortAnswer(double limit) : limit_(limit) {}
  aha::reward::Score score(const aha::reward::Sample& s) const override {
    auto out = aha::reward::Score::of(s.completion_tokens <= limit_ ? 1.0 : 0.0);
    out.extras.emplace_back("tokens", static_cast<double>(s.completion_tokens));
    return out;
  }

 private:
  double limit_;
};

int main() {
  try {
    aha::reward::Registry registry;
    aha::reward::register_builtins(registry);
    registry.add(
        "short_answer",
        [](const aha::Json& p) {
          aha::reward::check_param_keys(p, "short_answer", {"limit"});
          return std::make_unique<ShortAnswer>(aha::reward::param_number(p, "short_answer", "limit", 16));
        },
        "1 when the completion has at most `limit` tokens");

    const aha::Config config = aha::parse_config(R"({"reward": {"functions": [
        {"name": "format"}, {"name": "math_accuracy"}, {"name": "short_answer", "weight": 0.5,
         "params": {"limit": 12}}]}})",
                                                 "custom_reward");
    const aha::reward::RewardSet rewards(aha::rl::reward_set_options(config.reward), registry);

    const aha::Json truth = {{"answer", "42"}};
    std::vector<aha::reward::Sample> samples(2);
    samples[0].completion = "<think>40 + 2 = 42</think><answer>42</answer>";
    samples[0].completion_tokens = 10;
    samples[1].completion = "<think>maybe</think> the answer is 41";
    samples[1].completion_tokens = 20;
    for (auto& s : samples)
      s.fields = &truth;
    const auto scores = rewards.score(samples);
    for (size_t i = 0; i < samples.size(); ++i) {
      std::printf("sample %zu:", i);
      for (size_t k = 0; k < scores.names.size(); ++k)
        std::printf(" %s %.2f", scores.names[k].c_str(), scores.per_reward[k][i].value_or(-1));
      std::printf(" -> total %.2f\n", scores.total[i].value_or(-1));
    }
    return scores.total[0] == 2.5 && scores.total[1] == 0.0 ? 0 : 1;
  } catch (const aha::Error& e) {
    std::fprintf(stderr, "custom_reward: %s\n", e.what());
    return 1;
  }
}
