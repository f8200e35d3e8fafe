// The run configuration: one plain struct per section, every field with its default and a one-line doc.
//
// A run is described by JSON with these sections (any may be omitted; absent fields keep their defaults):
//   model, data, rollout, reward, grpo, optim, train, pretrain, dist, log
// `load_config` reads a file and applies `--set a.b.c=value` overrides; every error names the file (or the
// --set) and the JSON path. `aha config --explain` prints every field with its type, default and doc. The
// defaults follow R1-Zero / DAPO practice where they exist (see ../shared/spec/grpo.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aha/core/config_json.h"

namespace aha {

struct ModelSection {
  std::string path;  // HF checkpoint directory (config.json + safetensors); empty: a fresh model
  std::string precision = "fp32";     // numerics of the large matrix products
  std::string device = "auto";        // where the run computes
  uint64_t init_seed = 0;             // seed of the initial weights when no checkpoint is given
  std::string architecture = "tiny";  // fresh model: a built-in preset or a config.json path
  std::string tokenizer;              // tokenizer file; empty: the checkpoint's, else the task vocabulary
  std::string fp8_scales = "fp32";    // precision fp8: the quantisation scales' format

  template <class V>
  void visit(V& v) {
    v("path", path,
      "HF-format checkpoint directory (config.json + *.safetensors); empty builds a fresh model");
    v("precision", precision, "numerics of the large matrix products",
      Constraint::one_of({"fp32", "bf16", "fp8"}));
    v("device", device, "auto (cuda when available, else cpu), cpu, cuda or cuda:N");
    v("init_seed", init_seed, "seed of the initial weights of a fresh model");
    v("architecture", architecture,
      "architecture of a fresh model (model.path empty): a built-in preset (tiny) or the path of an HF "
      "config.json");
    v("tokenizer", tokenizer,
      "tokenizer.json or {\"type\": \"char\"} file; empty: the checkpoint's tokenizer.json, else the "
      "built-in "
      "task vocabulary (task)");
    v("fp8_scales", fp8_scales,
      "with precision fp8: fp32 scales (amax / 448) or ue8m0 (powers of two, rounded up) for activations, "
      "gradients and weights",
      Constraint::one_of({"fp32", "ue8m0"}));
  }
};

struct DataSection {
  std::string source = "task";            // where prompts come from
  std::string path;                       // JSONL file when source = jsonl
  std::string prompt_field = "question";  // JSONL field holding the question
  std::string answer_field = "answer";    // JSONL field holding the ground truth
  std::string eval_path;                  // JSONL of held-out prompts; empty: split them off `path`
  std::string task = "arithmetic";        // built-in task generator when source = task
  Json task_params = Json::object();      // the task's parameters (tasks.h)
  std::string template_name =
      "r1_zero";  // prompt template: a built-in name or text with {field} placeholders
  bool shuffle = true;
  uint64_t seed = 1;
  int64_t eval_size = 128;  // held-out prompts for evaluation

  template <class V>
  void visit(V& v) {
    v("source", source, "where prompts come from", Constraint::one_of({"task", "jsonl"}));
    v("path", path, "JSONL file of prompts (source = jsonl)");
    v("prompt_field", prompt_field, "JSONL field that holds the question");
    v("answer_field", answer_field, "JSONL field that holds the ground truth");
    v("eval_path", eval_path, "JSONL of held-out prompts; empty: eval_size records are split off `path`");
    v("task", task, "built-in task generator (source = task)",
      Constraint::one_of({"arithmetic", "countdown"}));
    v("task_params", task_params, "parameters of the task generator (see include/aha/rl/tasks.h)");
    v("template", template_name,
      "prompt template: a built-in name (r1_zero, plain) or text with {field} placeholders");
    v("shuffle", shuffle, "shuffle prompts each epoch");
    v("seed", seed, "seed of the shuffle and of task generators");
    v("eval_size", eval_size, "number of held-out prompts used for evaluation", Constraint::at_least(0));
  }
};

struct RolloutSection {
  int64_t num_generations = 8;  // G: completions per prompt
  int64_t max_new_tokens = 256;
  double temperature = 1.0;
  int64_t top_k = 0;  // 0: off
  double top_p = 1.0;
  double min_p = 0.0;
  std::vector<std::string> stop;  // stop strings
  uint64_t seed = 1;

  template <class V>
  void visit(V& v) {
    v("num_generations", num_generations, "G: completions sampled per prompt", Constraint::at_least(1));
    v("max_new_tokens", max_new_tokens, "longest completion; longer ones are truncated",
      Constraint::at_least(1));
    v("temperature", temperature, "sampling temperature (0: greedy)", Constraint::at_least(0));
    v("top_k", top_k, "keep the k most likely tokens (0: off)", Constraint::at_least(0));
    v("top_p", top_p, "nucleus sampling mass (1: off)", Constraint{0, 1, true, false, {}});
    v("min_p", min_p, "drop tokens below min_p times the top probability (0: off)",
      Constraint{0, 1, false, true, {}});
    v("stop", stop, "stop strings: generation ends after any of them");
    v("seed", seed, "sampling seed (same seed, same completions)");
  }
};

struct RewardSpec {
  std::string name;     // registered reward name
  double weight = 1.0;  // weight in the summed reward
  Json params = Json::object();
  std::string plugin;  // shared library that registers `name`; empty for built-ins

  template <class V>
  void visit(V& v) {
    v("name", name, "registered reward name (built-in, from code, or from `plugin`)");
    v("weight", weight, "weight of this reward in the total");
    v("params", params, "parameters passed to the reward's factory");
    v("plugin", plugin, "path of a shared library that registers this reward; empty for built-ins");
  }
};

struct RewardSection {
  std::vector<RewardSpec> functions = {{"format", 1.0, Json::object(), ""},
                                       {"math_accuracy", 1.0, Json::object(), ""}};
  double fallback_score = 0.0;  // score when an external reward fails
  int64_t threads = 0;          // 0: hardware concurrency

  template <class V>
  void visit(V& v) {
    v("functions", functions, "rewards summed with their weights: [{name, weight, params, plugin}]");
    v("fallback_score", fallback_score,
      "score given when an external reward crashes, times out or answers garbage");
    v("threads", threads, "threads scoring a batch (0: one per core)", Constraint::at_least(0));
  }
};

struct GrpoSection {
  std::string advantage = "grpo";
  double std_eps = 1e-4;
  std::string loss_aggregation = "token-mean";
  std::string ratio = "token";
  double epsilon_low = 0.2;
  double epsilon_high = 0.28;
  double dual_clip = 0.0;  // 0: off
  double beta = 0.0;       // 0: no reference model at all
  std::string kl_estimator = "k3";
  double entropy_coef = 0.0;  // 0: no entropy bonus
  int64_t ref_reset_every = 0;
  int64_t mu = 1;
  bool dynamic_sampling = false;
  int64_t max_resample_rounds = 3;
  bool mask_truncated = false;

  template <class V>
  void visit(V& v) {
    v("advantage", advantage, "grpo (group mean/std), dr_grpo (no std), batch_std, rloo",
      Constraint::one_of({"grpo", "dr_grpo", "batch_std", "rloo"}));
    v("std_eps", std_eps, "epsilon added to the group std", Constraint::greater_than(0));
    v("loss_aggregation", loss_aggregation, "how token losses are averaged",
      Constraint::one_of(
          {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm", "seq-mean-token-sum"}));
    v("ratio", ratio, "importance ratio per token (GRPO) or per sequence (GSPO)",
      Constraint::one_of({"token", "sequence"}));
    v("epsilon_low", epsilon_low, "lower clip range: ratio >= 1 - epsilon_low", Constraint::range(0, 1));
    v("epsilon_high", epsilon_high, "upper clip range: ratio <= 1 + epsilon_high (DAPO clip-higher)",
      Constraint::at_least(0));
    v("dual_clip", dual_clip, "dual-clip constant c > 1 for negative advantages (0: off)",
      Constraint::at_least(0));
    v("beta", beta, "KL coefficient to the reference policy (0: no reference model)",
      Constraint::at_least(0));
    v("kl_estimator", kl_estimator, "KL estimator", Constraint::one_of({"k1", "k2", "k3"}));
    v("entropy_coef", entropy_coef,
      "entropy bonus: subtract entropy_coef * the policy's token entropy, aggregated as the loss (0: off)",
      Constraint::at_least(0));
    v("ref_reset_every", ref_reset_every, "copy the policy into the reference every N steps (0: never)",
      Constraint::at_least(0));
    v("mu", mu, "policy updates per batch of rollouts", Constraint::at_least(1));
    v("dynamic_sampling", dynamic_sampling,
      "drop groups whose rewards all agree and refill the batch (DAPO)");
    v("max_resample_rounds", max_resample_rounds, "extra sampling rounds to refill the batch",
      Constraint::at_least(0));
    v("mask_truncated", mask_truncated,
      "leave truncated completions out of the loss (DAPO overlong filtering)");
  }
};

struct OptimSection {
  double lr = 1e-6;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.99;
  double adam_eps = 1e-8;
  std::string schedule = "constant";
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.1;
  double grad_clip = 1.0;  // 0: off

  template <class V>
  void visit(V& v) {
    v("lr", lr, "peak learning rate", Constraint::greater_than(0));
    v("weight_decay", weight_decay, "AdamW decoupled weight decay (not applied to norms, biases, embeddings)",
      Constraint::at_least(0));
    v("adam_beta1", adam_beta1, "AdamW beta1", Constraint{0, 1, false, true, {}});
    v("adam_beta2", adam_beta2, "AdamW beta2", Constraint{0, 1, false, true, {}});
    v("adam_eps", adam_eps, "AdamW epsilon", Constraint::greater_than(0));
    v("schedule", schedule, "learning-rate schedule after warmup",
      Constraint::one_of({"constant", "cosine"}));
    v("warmup_steps", warmup_steps, "linear warmup steps", Constraint::at_least(0));
    v("min_lr_ratio", min_lr_ratio, "cosine floor as a fraction of lr", Constraint::range(0, 1));
    v("grad_clip", grad_clip, "clip the global gradient norm to this (0: off)", Constraint::at_least(0));
  }
};

struct TrainSection {
  int64_t steps = 200;
  int64_t prompts_per_step = 16;
  int64_t micro_batch_size = 32;  // completions per forward/backward
  bool group_by_length = false;   // micro-batches of completions of similar length (less padding)
  int64_t eval_every = 20;        // 0: never
  int64_t save_every = 50;        // 0: only at the end
  std::string run_dir = "runs/default";
  uint64_t seed = 1;
  std::string accuracy_reward;     // reward whose score decides "correct"; empty: the first accuracy-like one
  double correct_threshold = 1.0;  // a sample is correct when that reward scores at least this
  int64_t eval_k = 0;              // > 0: also sample k completions per held-out prompt (mean@k, pass@k)
  bool eval_at_start = true;       // evaluate before the first update (the "before RL" figure)
  int64_t keep_checkpoints = 2;
  double bias_update_speed = 0.001;       // gamma of the auxiliary-loss-free balance (0: off)
  double balance_alpha = 0.0;             // weight of the sequence-wise balance loss (0: off)
  int64_t max_bad_steps = 3;              // consecutive non-finite losses that stop the run
  bool activation_checkpointing = false;  // recompute each decoder layer in the backward pass

  template <class V>
  void visit(V& v) {
    v("steps", steps, "optimizer steps", Constraint::at_least(0));
    v("prompts_per_step", prompts_per_step, "prompts per step (each sampled num_generations times)",
      Constraint::at_least(1));
    v("micro_batch_size", micro_batch_size, "completions per forward/backward pass", Constraint::at_least(1));
    v("group_by_length", group_by_length,
      "fill micro-batches with completions of similar length (less padding; the gradient is the same sum in "
      "another order)");
    v("eval_every", eval_every, "evaluate every N steps (0: never)", Constraint::at_least(0));
    v("save_every", save_every, "checkpoint every N steps (0: at the end only)", Constraint::at_least(0));
    v("run_dir", run_dir, "run directory: config, logs, metrics, samples, checkpoints");
    v("seed", seed, "seed of everything the run draws at random");
    v("accuracy_reward", accuracy_reward,
      "reward that decides whether a completion is correct (empty: the first of math_accuracy, gsm8k, "
      "countdown, exact_match, regex_match in reward.functions)");
    v("correct_threshold", correct_threshold,
      "a completion is correct when that reward scores at least this");
    v("eval_k", eval_k,
      "also sample k completions per held-out prompt for mean@k and pass@k (0: greedy only)",
      Constraint::at_least(0));
    v("eval_at_start", eval_at_start, "evaluate before the first update (the before-RL accuracy)");
    v("keep_checkpoints", keep_checkpoints, "checkpoints kept in the run directory (older ones are removed)",
      Constraint::at_least(1));
    v("bias_update_speed", bias_update_speed,
      "gamma of DeepSeek-V3's auxiliary-loss-free balancing: routing-bias step per update (0: off)",
      Constraint::at_least(0));
    v("balance_alpha", balance_alpha, "weight of the sequence-wise balance loss (0: off)",
      Constraint::at_least(0));
    v("max_bad_steps", max_bad_steps, "consecutive steps with a NaN or inf loss that stop the run",
      Constraint::at_least(1));
    v("activation_checkpointing", activation_checkpointing,
      "keep only each decoder layer's input during the forward pass and recompute the layer in the backward "
      "pass (less memory, about a third more compute)");
  }
};

struct PretrainSection {
  std::string corpus = "r1_base";  // a built-in corpus (tasks.h) or a .jsonl / .txt file
  Json corpus_params = Json::object();
  std::string text_field = "text";  // JSONL field of a document
  int64_t seq_len = 128;
  int64_t batch_size = 32;
  double mtp_lambda = 0.3;  // weight of the multi-token-prediction loss when the model has MTP modules

  template <class V>
  void visit(V& v) {
    v("corpus", corpus,
      "training text: a built-in corpus (r1_base) or a .jsonl (one document per record) or .txt "
      "(one document per line) file");
    v("corpus_params", corpus_params, "parameters of a built-in corpus (include/aha/rl/tasks.h)");
    v("text_field", text_field, "JSONL field that holds a document");
    v("seq_len", seq_len, "tokens per training row (documents are packed)", Constraint::at_least(2));
    v("batch_size", batch_size, "rows per step", Constraint::at_least(1));
    v("mtp_lambda", mtp_lambda, "weight of the MTP loss when the model has MTP modules (0: off)",
      Constraint::at_least(0));
  }
};

struct DistSection {
  std::string backend = "auto";  // auto: nccl on CUDA, gloo on CPU
  double timeout_s = 600;
  std::string master_addr;      // empty: from the environment (MASTER_ADDR, Slurm) or 127.0.0.1
  int64_t master_port = 0;      // 0: from the environment or 29500
  double bucket_mb = 25;        // MiB of gradients per all-reduce bucket
  bool overlap = true;          // all-reduce gradient buckets during the last micro-batch's backward pass
  std::string shard = "none";   // none | optimizer (ZeRO-1) | grads (ZeRO-2) | full (FSDP / ZeRO-3)
  int64_t expert_parallel = 1;  // ranks that split the routed experts among them

  template <class V>
  void visit(V& v) {
    v("backend", backend, "collective backend", Constraint::one_of({"auto", "nccl", "gloo"}));
    v("timeout_s", timeout_s, "rendezvous and collective timeout in seconds", Constraint::greater_than(0));
    v("master_addr", master_addr, "rendezvous host (empty: MASTER_ADDR, the first Slurm host, or 127.0.0.1)");
    v("master_port", master_port, "rendezvous port (0: MASTER_PORT or 29500)", Constraint::range(0, 65535));
    v("bucket_mb", bucket_mb, "MiB of gradients per all-reduce bucket", Constraint::greater_than(0));
    v("overlap", overlap,
      "all-reduce each gradient bucket as soon as the last micro-batch's backward pass has filled it "
      "(false: all of them after that backward pass)");
    v("shard", shard,
      "what each rank keeps 1/W of: none (whole replicas), optimizer (AdamW moments and fp32 masters, "
      "ZeRO-1), grads (also the gradients, ZeRO-2), full (also the weights, gathered per layer: FSDP/ZeRO-3)",
      Constraint::one_of({"none", "optimizer", "grads", "full"}));
    v("expert_parallel", expert_parallel,
      "ranks that split each MoE layer's routed experts among them (tokens travel to their experts' rank "
      "and back by all-to-all); divides the world size and the number of routed experts",
      Constraint::at_least(1));
  }
};

struct LogSection {
  std::string level = "info";
  int64_t every = 1;             // console line every N steps
  int64_t samples_per_step = 4;  // completions written to samples.jsonl per step
  bool file = true;              // also log to <run_dir>/aha.log

  template <class V>
  void visit(V& v) {
    v("level", level, "log level", Constraint::one_of({"trace", "debug", "info", "warn", "error", "off"}));
    v("every", every, "print a metrics line every N steps", Constraint::at_least(1));
    v("samples_per_step", samples_per_step, "completions written to samples.jsonl each step",
      Constraint::at_least(0));
    v("file", file, "also write the log to <run_dir>/aha.log");
  }
};

struct Config {
  ModelSection model;
  DataSection data;
  RolloutSection rollout;
  RewardSection reward;
  GrpoSection grpo;
  OptimSection optim;
  TrainSection train;
  PretrainSection pretrain;
  DistSection dist;
  LogSection log;

  template <class V>
  void visit(V& v) {
    v("model", model, "the policy model");
    v("data", data, "prompt source and template");
    v("rollout", rollout, "sampling of completions");
    v("reward", reward, "reward functions");
    v("grpo", grpo, "advantages and policy loss");
    v("optim", optim, "optimizer and schedule");
    v("train", train, "steps, batch sizes, evaluation, checkpoints");
    v("pretrain", pretrain, "next-token pretraining (aha pretrain)");
    v("dist", dist, "multi-process setup");
    v("log", log, "logging");
  }
};

// Checks that involve more than one field (each field's own range is checked while reading).
void validate(const Config& config, const std::string& source);

// The configuration of the default run, compiled into the library from configs/default.json.
std::string_view default_config_text();

// Loads `path` (empty: the embedded default) over the struct defaults, then applies each `--set` override in
// order, then validates. Errors name the file or the override, and the JSON path.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Parses config JSON text; `source` names it in errors.
Config parse_config(std::string_view text, const std::string& source,
                    const std::vector<std::string>& overrides = {});

}  // namespace aha
