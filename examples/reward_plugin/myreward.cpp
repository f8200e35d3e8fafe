// A reward plugin: a shared library that adds the reward `reasoning_steps` to any aha program, the `aha` CLI
// included, without rebuilding it. A run config loads it by path:
//
//   {"name": "reasoning_steps", "plugin": "build-plugin/libmyreward.so", "params": {"target": 3}}
//
// reasoning_steps: min(1, steps / target), where steps are the lines of the chain of thought (<think>..)
// that write down a partial result ("17 + 25 = 42"). It rewards showing the work, as R1-Zero's
// re-evaluating completions do.
#include <aha/reward/builtin.h>
#include <aha/reward/plugin.h>

#include <algorithm>
#include <memory>
#include <string_view>

namespace {

class ReasoningSteps : public aha::reward::Reward {
 public:
  explicit ReasoningSteps(const aha::Json& params) {
    aha::reward::check_param_keys(params, "reasoning_steps", {"target"});
    target_ = aha::reward::param_number(params, "reasoning_steps", "target", 3);
    if (!(target_ > 0)) throw aha::Error("must be > 0", "reward reasoning_steps: params.target");
  }

  aha::reward::Score score(const aha::reward::Sample& sample) const override {
    const auto think = aha::reward::think_block(sample.completion);
    if (!think) return aha::reward::Score::of(0.0);
    int steps = 0;
    for (size_t start = 0; start < think->size();) {
      const size_t end = std::min(think->find('\n', start), think->size());
      if (think->substr(start, end - start).find('=') != std::string_view::npos) ++steps;
      start = end + 1;
    }
    aha::reward::Score out = aha::reward::Score::of(std::min(1.0, steps / target_));
    out.extras.emplace_back("steps", steps);
    return out;
  }

 private:
  double target_ = 3;
};

}  // namespace

AHA_REWARD_PLUGIN(registry) {
  registry.add(
      "reasoning_steps", [](const aha::Json& p) { return std::make_unique<ReasoningSteps>(p); },
      "min(1, steps / target): lines of the chain of thought that write down a partial result");
}
