// `aha forward` and `aha convert`: the model from the outside (parity checks, checkpoint conversion).
#include <ATen/ATen.h>
#include <torch/utils.h>

#include <chrono>
#include <iostream>

#include "aha/core/error.h"
#include "aha/io/safetensors.h"
#include "aha/model/checkpoint.h"
#include "commands.h"

namespace aha::cli {
namespace {

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp16" || name == "float16") return at::kHalf;
  throw Error("unknown dtype \"" + name + "\" (expected fp32, bf16 or fp16)");
}

at::Device parse_device(const std::string& name) {
  if (name == "auto") return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  try {
    return at::Device(name);
  } catch (const std::exception&) {
    throw Error("unknown device \"" + name + "\" (expected auto, cpu, cuda or cuda:N)");
  }
}

at::Tensor rows_to_tensor(const Json& rows, const std::string& what, const std::string& source) {
  if (!rows.is_array() || rows.empty()) throw Error(what + " must be a non-empty list of lists", source);
  const size_t len = rows[0].is_array() ? rows[0].size() : 0;
  std::vector<int64_t> flat;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].is_array() || rows[r].size() != len)
      throw Error(what + "[" + std::to_string(r) + "] must be a list of " + std::to_string(len) + " integers",
                  source);
    for (const auto& v : rows[r]) {
      if (!v.is_number_integer())
        throw Error(what + "[" + std::to_string(r) + "] holds a non-integer: " + v.dump(), source);
      flat.push_back(v.get<int64_t>());
    }
  }
  return at::tensor(flat, at::kLong).view({static_cast<int64_t>(rows.size()), static_cast<int64_t>(len)});
}

// ids.json: [[ids...], ...] (rows of different lengths are left-padded with `pad`), or
// {"input_ids": [[...]], "attention_mask": [[...]], "position_ids": [[...]]} (the last two optional).
model::ForwardInput read_inputs(const std::string& path, int64_t pad) {
  const Json j = read_json_file(path);
  model::ForwardInput in;
  if (j.is_object()) {
    if (!j.contains("input_ids")) throw Error("expected \"input_ids\"", path);
    in.input_ids = rows_to_tensor(j["input_ids"], "input_ids", path);
    if (j.contains("attention_mask"))
      in.attention_mask = rows_to_tensor(j["attention_mask"], "attention_mask", path);
    if (j.contains("position_ids")) in.position_ids = rows_to_tensor(j["position_ids"], "position_ids", path);
    return in;
  }
  if (!j.is_array() || j.empty())
    throw Error("expected a list of token-id lists or an object with input_ids", path);
  size_t longest = 0;
  for (const auto& row : j) {
    if (!row.is_array()) throw Error("every element must be a list of token ids", path);
    longest = std::max(longest, row.size());
  }
  Json ids = Json::array(), mask = Json::array();
  for (const auto& row : j) {
    Json r = Json::array(), m = Json::array();
    for (size_t i = row.size(); i < longest; ++i) {
      r.push_back(pad);
      m.push_back(0);
    }
    for (const auto& v : row) {
      r.push_back(v);
      m.push_back(1);
    }
    ids.push_back(r);
    mask.push_back(m);
  }
  in.input_ids = rows_to_tensor(ids, "input_ids", path);
  in.attention_mask = rows_to_tensor(mask, "attention_mask", path);
  return in;
}

}  // namespace

void add_model_commands(CLI::App& app) {
  auto* fwd =
      app.add_subcommand("forward", "run the model on token ids and write the logits (parity checks)");
  struct ForwardArgs {
    std::string model, input, output, dtype = "fp32", device = "cpu";
  };
  auto f = std::make_shared<ForwardArgs>();
  fwd->add_option("--model", f->model, "HF-format model directory")->required();
  fwd->add_option("--input", f->input,
                  "ids.json: [[ids...], ...] or {input_ids, attention_mask, position_ids}")
      ->required();
  fwd->add_option("--output", f->output,
                  "logits.safetensors to write (logits [B, T, V] fp32, attention_mask)")
      ->required();
  fwd->add_option("--dtype", f->dtype, "compute dtype: fp32, bf16, fp16")->capture_default_str();
  fwd->add_option("--device", f->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  fwd->callback([f] {
    torch::NoGradGuard no_grad;
    auto model = model::load_pretrained(f->model, {parse_dtype(f->dtype), parse_device(f->device)});
    model->eval();
    model::ForwardInput in = read_inputs(f->input, model->config().pad_token_id.value_or(0));
    if (!in.attention_mask.defined()) in.attention_mask = at::ones_like(in.input_ids);
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = model->forward(in);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    io::save_safetensors(f->output,
                         {{"logits", out.logits.to(at::kFloat).cpu()}, {"attention_mask", in.attention_mask}},
                         {{"model", f->model}, {"dtype", f->dtype}});
    std::cout << "logits [" << out.logits.size(0) << ", " << out.logits.size(1) << ", " << out.logits.size(2)
              << "] -> " << f->output << " (" << in.input_ids.numel() << " tokens in " << seconds << " s)\n";
  });

  auto* init =
      app.add_subcommand("init", "create a freshly initialised model from an HF config.json and save it");
  struct InitArgs {
    std::string config, output, dtype;
    uint64_t seed = 0;
  };
  auto ia = std::make_shared<InitArgs>();
  init->add_option("--config", ia->config, "HF-format config.json")->required()->check(CLI::ExistingFile);
  init->add_option("--output", ia->output, "directory to write (config.json + safetensors)")->required();
  init->add_option("--seed", ia->seed, "seed of the initial weights")->capture_default_str();
  init->add_option("--dtype", ia->dtype, "dtype to store: fp32, bf16, fp16 (default fp32)");
  init->callback([ia] {
    torch::NoGradGuard no_grad;
    model::Transformer m(model::load_hf_config(ia->config));
    m->init_weights(ia->seed);
    model::SaveOptions opts;
    if (!ia->dtype.empty()) opts.dtype = parse_dtype(ia->dtype);
    model::save_pretrained(*m, ia->output, opts);
    std::cout << "wrote " << ia->output << "\n";
  });

  auto* conv =
      app.add_subcommand("convert", "load an HF checkpoint (any layout, FP8 too) and save it as aha writes");
  struct ConvertArgs {
    std::string model, output, dtype;
    uint64_t max_shard = 5'000'000'000ull;
  };
  auto c = std::make_shared<ConvertArgs>();
  conv->add_option("--model", c->model, "HF-format model directory to read")->required();
  conv->add_option("--output", c->output, "directory to write (config.json + safetensors)")->required();
  conv->add_option("--dtype", c->dtype, "dtype to store: fp32, bf16, fp16 (default: as loaded, fp32)");
  conv->add_option("--max-shard-bytes", c->max_shard, "largest shard file")->capture_default_str();
  conv->callback([c] {
    torch::NoGradGuard no_grad;
    auto model = model::load_pretrained(c->model);
    model::SaveOptions opts;
    if (!c->dtype.empty()) opts.dtype = parse_dtype(c->dtype);
    opts.max_shard_bytes = c->max_shard;
    model::save_pretrained(*model, c->output, opts);
    std::cout << "wrote " << c->output << "\n";
  });
}

}  // namespace aha::cli
