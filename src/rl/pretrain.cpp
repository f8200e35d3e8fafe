#include "aha/rl/pretrain.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>

#include "aha/core/error.h"
#include "aha/core/log.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"
#include "aha/io/plot.h"
#include "aha/model/balance.h"
#include "aha/model/checkpoint.h"
#include "aha/rl/optimizer.h"
#include "aha/rl/policy.h"
#include "aha/rl/prompts.h"
#include "aha/rl/run_files.h"
#include "aha/rl/tasks.h"
#include "aha/rl/trainer.h"

namespace aha::rl {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// An endless, seeded stream of documents.
class Documents {
 public:
  Documents(const Config& c) : seed_(c.train.seed) {
    const auto& p = c.pretrain;
    if (p.corpus == "r1_base") {
      Json params = p.corpus_params.is_null() ? Json::object() : p.corpus_params;
      if (!params.contains("arithmetic") && c.data.source == "task" && c.data.task == "arithmetic")
        params["arithmetic"] = c.data.task_params;
      std::unordered_set<std::string> exclude;
      for (auto& q : held_out_questions(c.data))
        exclude.insert(q);
      excluded_ = exclude.size();
      corpus_ = std::make_unique<Corpus>(p.corpus, params, std::move(exclude));
      return;
    }
    AHA_CHECK(fs::exists(p.corpus), "pretrain.corpus \"", p.corpus,
              "\" is neither a built-in corpus (r1_base) nor an existing file");
    if (p.corpus.size() > 6 && p.corpus.substr(p.corpus.size() - 6) == ".jsonl") {
      for (auto& r : io::read_jsonl(p.corpus)) {
        AHA_CHECK(r.value.is_object() && r.value.contains(p.text_field) && r.value[p.text_field].is_string(),
                  p.corpus, ":", r.line, ": no string field \"", p.text_field, "\" (pretrain.text_field)");
        docs_.push_back(r.value[p.text_field].get<std::string>());
      }
    } else {
      std::istringstream in(io::read_file(p.corpus));
      std::string line;
      while (std::getline(in, line))
        if (!line.empty()) docs_.push_back(line);
    }
    AHA_CHECK(!docs_.empty(), p.corpus, ": no documents");
  }

  std::string get(uint64_t index) {
    if (corpus_) return corpus_->document(seed_, index);
    const uint64_t n = docs_.size();
    const uint64_t epoch = index / n;
    if (epoch != epoch_) {
      order_.resize(n);
      for (uint64_t i = 0; i < n; ++i)
        order_[i] = i;
      std::mt19937_64 rng(item_seed(seed_, epoch, 0xD0C));
      for (uint64_t i = n; i > 1; --i)
        std::swap(order_[i - 1], order_[rng() % i]);
      epoch_ = epoch;
    }
    return docs_[order_[index % n]];
  }

  size_t excluded() const { return excluded_; }
  bool held_out_facts() const { return corpus_ && corpus_->held_out_facts(); }

 private:
  uint64_t seed_;
  std::unique_ptr<Corpus> corpus_;
  std::vector<std::string> docs_;
  std::vector<uint64_t> order_;
  uint64_t epoch_ = ~0ull;
  size_t excluded_ = 0;
};

}  // namespace

PretrainSummary pretrain(const Config& config, const PretrainOptions& options) {
  Config c = config;
  const std::string run_dir = c.train.run_dir;
  AHA_CHECK(!run_dir.empty(), "train.run_dir is empty");
  std::string checkpoint;
  if (options.resume) {
    checkpoint = latest_checkpoint(run_dir);
    AHA_CHECK(!checkpoint.empty(), "cannot resume: no checkpoint in ", run_dir, "/checkpoints");
  } else if (fs::exists(fs::path(run_dir) / "checkpoints")) {
    AHA_FAIL("the run directory ", run_dir,
             " already holds a run: resume it with --resume, or choose another ", "train.run_dir");
  }
  io::make_dirs(run_dir);
  if (c.log.file) log::open_file((fs::path(run_dir) / "aha.log").string());
  ModelSection ms = c.model;
  if (!checkpoint.empty()) ms.path = (fs::path(checkpoint) / "model").string();
  Policy policy = make_policy(ms, c.data);
  auto& model = *policy.model;
  const auto special = policy.tokenizer->special_tokens();
  const int64_t bos = special.bos.value_or(-1), eos = special.eos.value_or(-1), pad = special.pad.value_or(0);

  std::vector<at::Tensor> all;
  std::unique_ptr<torch::optim::AdamW> optimizer = make_adamw(model, c.optim, &all);
  torch::optim::AdamW& optim = *optimizer;

  Documents docs(c);
  uint64_t next_doc = 0;
  int64_t step = 0;
  if (!checkpoint.empty()) {
    const Json st = read_checkpoint_state(checkpoint);
    step = st.at("step").get<int64_t>();
    next_doc = st.at("next_document").get<uint64_t>();
    load_optimizer(optim, (fs::path(checkpoint) / "optimizer.pt").string());
    truncate_jsonl_after_step((fs::path(run_dir) / "metrics.jsonl").string(), step);
    log::info("resumed ", run_dir, " at step ", step);
  } else {
    io::write_file_atomic((fs::path(run_dir) / "config.json").string(), to_json(c).dump(2) + "\n");
    fs::remove(fs::path(run_dir) / "metrics.jsonl");
  }
  io::JsonlWriter metrics((fs::path(run_dir) / "metrics.jsonl").string(), true);
  std::vector<Json> history = read_metrics((fs::path(run_dir) / "metrics.jsonl").string());

  auto save = [&](const std::string& name) {
    commit_checkpoint(
        run_dir, name,
        [&](const std::string& dir) {
          save_policy(policy, (fs::path(dir) / "model").string());
          save_optimizer(optim, (fs::path(dir) / "optimizer.pt").string());
        },
        Json{{"step", step}, {"next_document", next_doc}}, 1);
  };

  const int64_t B = c.pretrain.batch_size, T = c.pretrain.seq_len + 1;
  const bool mtp = model.num_mtp_layers() > 0 && c.pretrain.mtp_lambda > 0;
  log::info("pretraining ", run_dir, ": ", c.train.steps, " steps of ", B, " x ", c.pretrain.seq_len,
            " tokens",
            docs.excluded() == 0 ? std::string()
            : docs.held_out_facts()
                ? ", the " + std::to_string(docs.excluded()) + " held-out questions as plain-form facts only"
                : ", " + std::to_string(docs.excluded()) + " held-out questions left out");
  const auto t0 = Clock::now();
  PretrainSummary summary;
  std::vector<double> recent;
  std::vector<int64_t> ids(static_cast<size_t>(B * T)), mask(static_cast<size_t>(B * T));
  while (step < c.train.steps) {
    if (stop_requested()) {
      summary.stopped_early = true;
      break;
    }
    const auto ts = Clock::now();
    // Pack documents into rows.
    for (int64_t b = 0; b < B; ++b) {
      int64_t t = 0;
      while (t < T) {
        std::vector<int64_t> d = policy.tokenizer->encode(docs.get(next_doc++), false);
        if (bos >= 0) d.insert(d.begin(), bos);
        if (eos >= 0) d.push_back(eos);
        for (size_t k = 0; k < d.size() && t < T; ++k, ++t) {
          ids[static_cast<size_t>(b * T + t)] = d[k];
          mask[static_cast<size_t>(b * T + t)] = 1;
        }
      }
    }
    (void)pad;
    at::Tensor x = at::from_blob(ids.data(), {B, T}, at::kLong).to(policy.device, false, true);
    at::Tensor input = x.narrow(1, 0, T - 1), target = x.narrow(1, 1, T - 1);
    model::ForwardInput in;
    in.input_ids = input;
    in.compute_logits = true;
    in.compute_mtp = mtp;
    in.balance_alpha = c.train.balance_alpha;
    model::ForwardOutput out = model.forward(in);
    at::Tensor ce = at::cross_entropy_loss(out.logits.to(at::kFloat).reshape({-1, out.logits.size(-1)}),
                                           target.reshape({-1}));
    at::Tensor loss = ce;
    double mtp_value = 0;
    if (mtp) {
      at::Tensor ml = model::mtp_loss(out, input, at::Tensor(), c.pretrain.mtp_lambda);
      mtp_value = ml.item<double>();
      loss = loss + ml;
    }
    if (out.balance_loss.defined()) loss = loss + out.balance_loss;
    const double lr = scheduled_lr(c.optim, step, c.train.steps);
    set_lr(optim, lr);
    optim.zero_grad();
    loss.backward();
    const double gn = torch::nn::utils::clip_grad_norm_(
        all, c.optim.grad_clip > 0 ? c.optim.grad_clip : std::numeric_limits<double>::infinity());
    const double lv = ce.item<double>();
    if (std::isfinite(lv) && std::isfinite(gn)) {
      optim.step();
      if (c.train.bias_update_speed > 0 && out.expert_load.defined() && out.expert_load.numel() > 0)
        model::update_routing_bias(model, out.expert_load, c.train.bias_update_speed);
    } else {
      log::warn("step ", step + 1, ": non-finite loss or gradient; the update is skipped");
    }
    ++step;
    recent.push_back(lv);
    if (recent.size() > 20) recent.erase(recent.begin());
    const double secs = std::chrono::duration<double>(Clock::now() - ts).count();
    Json m{{"step", step}, {"loss", lv}, {"lr", lr}, {"grad_norm", gn}};
    if (mtp) m["mtp_loss"] = mtp_value;
    m["tok_s"] = static_cast<double>(B * (T - 1)) / std::max(1e-9, secs);
    m["step_s"] = secs;
    metrics.write(m);
    history.push_back(m);
    if (options.on_step) options.on_step(m);
    if (options.console && (step % std::max<int64_t>(c.log.every, 1) == 0 || step == c.train.steps)) {
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      log::info(
          "pretrain step ", step, "/", c.train.steps, " | loss ", lv,
          mtp ? " | mtp " + std::to_string(mtp_value) : "", " | lr ", lr, " | ",
          static_cast<int64_t>(m["tok_s"].get<double>()), " tok/s | ETA ",
          static_cast<int64_t>(el / std::max<int64_t>(1, step) * static_cast<double>(c.train.steps - step)),
          "s");
    }
    if (c.train.save_every > 0 && step % c.train.save_every == 0 && step < c.train.steps)
      save("step-" + std::to_string(step));
  }
  save("step-" + std::to_string(step));
  save_policy(policy, (fs::path(run_dir) / "model").string());
  io::Series s{"next-token loss", {}, {}, 0};
  for (const auto& m : history) {
    s.x.push_back(m["step"].get<double>());
    s.y.push_back(m["loss"].get<double>());
  }
  io::write_plot_png((fs::path(run_dir) / "plot.png").string(),
                     {io::Panel{"pretraining", "step", "loss", {s}}});
  summary.steps = step;
  for (double v : recent)
    summary.final_loss += v / static_cast<double>(recent.size());
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  summary.model_dir = (fs::path(run_dir) / "model").string();
  log::flush();
  return summary;
}

}  // namespace aha::rl
