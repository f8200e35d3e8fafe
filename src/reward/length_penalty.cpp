// length_penalty (builtin.h): Kimi k1.5's group-relative length reward, or a linear penalty past a target.
//
// Kimi's form compares the completions of one prompt, so it scores whole batches (batched() is true): the
// samples that share a prompt text form a group.
#include <algorithm>
#include <map>
#include <memory>

#include "aha/core/error.h"
#include "aha/reward/builtin.h"
#include "aha/reward/reward.h"
#include "aha/text/utf8.h"

namespace aha::reward {
namespace {

class LengthPenalty : public Reward {
 public:
  explicit LengthPenalty(const Json& p) {
    const std::string name = "length_penalty", at = "reward length_penalty: params";
    check_param_keys(p, name, {"mode", "unit", "accuracy", "threshold", "target", "slope", "floor"});
    const std::string mode = param_string(p, name, "mode", "kimi");
    if (mode != "kimi" && mode != "linear")
      throw Error("expected \"kimi\" or \"linear\", got \"" + mode + "\"", at + ".mode");
    kimi_ = mode == "kimi";
    const std::string unit = param_string(p, name, "unit", "tokens");
    if (unit != "tokens" && unit != "chars")
      throw Error("expected \"tokens\" or \"chars\", got \"" + unit + "\"", at + ".unit");
    chars_ = unit == "chars";
    if (kimi_) {
      for (const char* k : {"target", "slope", "floor"})
        if (p.contains(k)) throw Error("only for mode \"linear\"", at + "." + k);
      threshold_ = param_number(p, name, "threshold", 1.0);
      if (p.contains("accuracy")) {
        const Json& a = p["accuracy"];
        if (!a.is_object() || !a.contains("name") || !a["name"].is_string())
          throw Error("expected {\"name\": a built-in reward, \"params\": {...}}, got " + a.dump(),
                      at + ".accuracy");
        for (auto it = a.begin(); it != a.end(); ++it)
          if (it.key() != "name" && it.key() != "params")
            throw Error("unknown key (known: name, params)", at + ".accuracy." + it.key());
        Registry builtins;
        register_builtins(builtins);
        try {
          judge_ = builtins.create(a["name"].get<std::string>(), a.value("params", Json::object()));
        } catch (const Error& e) {
          throw Error(e.what(), at + ".accuracy");
        }
      }
    } else {
      for (const char* k : {"accuracy", "threshold"})
        if (p.contains(k)) throw Error("only for mode \"kimi\"", at + "." + k);
      if (!p.contains("target") || !p.contains("slope"))
        throw Error("mode \"linear\" needs target and slope", at);
      target_ = param_number(p, name, "target", 0);
      slope_ = param_number(p, name, "slope", 0);
      floor_ = param_number(p, name, "floor", -1);
      if (target_ < 0) throw Error("must be >= 0", at + ".target");
      if (slope_ < 0) throw Error("must be >= 0", at + ".slope");
      if (floor_ > 0) throw Error("must be <= 0", at + ".floor");
    }
  }

  bool batched() const override { return kimi_; }

  Score score(const Sample& s) const override {
    if (kimi_) return score_batch({s})[0];
    const double n = length(s);
    return Score::of(n <= target_ ? 0.0 : std::max(floor_, -slope_ * (n - target_)));
  }

  std::vector<Score> score_batch(const std::vector<Sample>& samples) const override {
    if (!kimi_) return Reward::score_batch(samples);
    std::vector<Score> out(samples.size());
    const std::vector<Score> verdicts = judge_ ? judge_->score_batch(samples) : std::vector<Score>();
    std::map<std::string_view, std::vector<size_t>> groups;  // prompt -> sample indices
    for (size_t i = 0; i < samples.size(); ++i)
      groups[samples[i].prompt].push_back(i);
    for (const auto& [prompt, members] : groups) {
      double lo = length(samples[members[0]]), hi = lo;
      for (size_t i : members) {
        lo = std::min(lo, length(samples[i]));
        hi = std::max(hi, length(samples[i]));
      }
      for (size_t i : members) {
        const double lambda = hi > lo ? 0.5 - (length(samples[i]) - lo) / (hi - lo) : 0.0;
        if (!judge_) {
          out[i] = Score::of(lambda);
          continue;
        }
        const auto& verdict = verdicts[i].value;
        if (!verdict) {
          out[i] = Score::skip();
          continue;
        }
        out[i] = Score::of(*verdict >= threshold_ ? lambda : std::min(0.0, lambda));
      }
    }
    return out;
  }

 private:
  double length(const Sample& s) const {
    if (!chars_) return static_cast<double>(s.completion_tokens);
    double n = 0;
    for (size_t pos = 0; pos < s.completion.size(); ++n)
      pos += text::utf8_step(s.completion, pos).length;
    return n;
  }

  bool kimi_ = true, chars_ = false;
  std::unique_ptr<Reward> judge_;
  double threshold_ = 1, target_ = 0, slope_ = 0, floor_ = -1;
};

}  // namespace

void register_length_penalty(Registry& r) {
  r.add(
      "length_penalty", [](const Json& p) { return std::make_unique<LengthPenalty>(p); },
      "Kimi k1.5's length reward over each prompt's completions, or a linear penalty past a target length");
}

}  // namespace aha::reward
