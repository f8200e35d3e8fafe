#include "aha/model/checkpoint.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "aha/core/error.h"
#include "aha/io/file.h"
#include "aha/kernels/fp8.h"
#include "aha/model/linear.h"
#include "aha/model/moe.h"

namespace aha::model {
namespace {

namespace fs = std::filesystem;

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Index of the decoder layer a key belongs to ("model.layers.7.mlp..." -> 7), or -1.
int64_t layer_of(const std::string& key) {
  static const std::string prefix = "model.layers.";
  if (key.rfind(prefix, 0) != 0) return -1;
  const size_t end = key.find('.', prefix.size());
  if (end == std::string::npos) return -1;
  try {
    return std::stoll(key.substr(prefix.size(), end - prefix.size()));
  } catch (const std::exception&) {
    return -1;
  }
}

// Reads checkpoint tensors by key, dequantising FP8 ones, and remembers which keys were used.
class Reader {
 public:
  Reader(const io::Checkpoint& c, std::string source) : ckpt_(c), source_(std::move(source)) {}

  bool has(const std::string& key) const { return ckpt_.contains(key); }

  at::Tensor get(const std::string& key) {
    if (!ckpt_.contains(key)) throw Error("missing key \"" + key + "\"", source_);
    used_.insert(key);
    at::Tensor t = ckpt_.tensor(key);
    if (t.scalar_type() == at::kFloat8_e4m3fn || t.scalar_type() == at::kFloat8_e5m2) {
      const std::string scale_key = key + "_scale_inv";
      if (!ckpt_.contains(scale_key))
        throw Error("FP8 tensor \"" + key + "\" has no \"" + scale_key + "\" block scales", source_);
      used_.insert(scale_key);
      try {
        t = dequantize_fp8_blocks(t, ckpt_.tensor(scale_key));
      } catch (const Error& e) {
        throw Error(e.message() + " (tensor \"" + key + "\")", source_);
      }
    }
    return t;
  }

  // The E4M3 data and 128x128 block scales of `key` as stored, when it is an FP8 E4M3 tensor; the caller has
  // read `key` with get() first (which checked the scales).
  std::optional<kernels::Fp8Tensor> e4m3_blocks(const std::string& key) const {
    const at::Tensor t = ckpt_.tensor(key);
    if (t.scalar_type() != at::kFloat8_e4m3fn || t.dim() != 2) return std::nullopt;
    return kernels::Fp8Tensor{t.contiguous(), ckpt_.tensor(key + "_scale_inv").to(at::kFloat).contiguous(),
                              kernels::kFp8BlockSize};
  }

  std::vector<std::string> unused(const ModelConfig& c, int64_t mtp_built) const {
    std::vector<std::string> out;
    for (const auto& k : ckpt_.names()) {
      if (used_.count(k)) continue;
      const int64_t layer = layer_of(k);
      if (layer >= c.num_hidden_layers && layer < c.num_hidden_layers + c.num_nextn_predict_layers)
        continue;                                         // MTP
      if (ends_with(k, "rotary_emb.inv_freq")) continue;  // recomputed from the config, as HF does
      out.push_back(k);
    }
    return out;
  }

  const std::string& source() const { return source_; }

 private:
  const io::Checkpoint& ckpt_;
  std::string source_;
  std::set<std::string> used_;
};

void assign(at::Tensor& target, const at::Tensor& value, const std::string& key, const std::string& source) {
  if (target.sizes() != value.sizes())
    throw Error("shape mismatch for \"" + key + "\": the model expects " + shape_str(target.sizes()) +
                    ", the checkpoint has " + shape_str(value.sizes()),
                source);
  target.copy_(value);
}

}  // namespace

at::Tensor dequantize_fp8_blocks(const at::Tensor& weight, const at::Tensor& scale_inv) {
  constexpr int64_t kBlock = 128;
  AHA_CHECK(weight.dim() == 2, "FP8 block dequantisation expects a 2-D weight, got ", weight.sizes());
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t br = (rows + kBlock - 1) / kBlock, bc = (cols + kBlock - 1) / kBlock;
  AHA_CHECK(scale_inv.dim() == 2 && scale_inv.size(0) == br && scale_inv.size(1) == bc, "weight ",
            weight.sizes(), " needs block scales [", br, ", ", bc, "] (128x128 blocks), got ",
            scale_inv.sizes());
  const at::Tensor s = scale_inv.to(at::kFloat)
                           .repeat_interleave(kBlock, 0)
                           .repeat_interleave(kBlock, 1)
                           .slice(0, 0, rows)
                           .slice(1, 0, cols);
  return weight.to(at::kFloat) * s;
}

void load_weights(TransformerImpl& model, const io::Checkpoint& checkpoint, const std::string& source) {
  torch::NoGradGuard no_grad;
  const ModelConfig& c = model.config();
  Reader r(checkpoint, source);
  // FP8 weights of Linear layers also go to the layer as they are, so that FP8 compute uses the shipped E4M3
  // values and scales (no requantisation of the dequantised master).
  std::map<std::string, LinearImpl*> linears;
  // Likewise the routed experts' E4M3 weights, stacked into the fused tensors' grouped quantisation.
  std::map<std::string, ExpertsImpl*> experts_of;  // "<prefix>mlp.experts." -> module
  for (const auto& item : model.named_modules()) {
    if (auto* linear = dynamic_cast<LinearImpl*>(item.value().get()))
      linears[item.key() + ".weight"] = linear;
    if (auto* experts = dynamic_cast<ExpertsImpl*>(item.value().get()))
      experts_of[item.key() + "."] = experts;
  }
  // The per-expert E4M3 blocks of `keys` (each expert's keys concatenated along the rows), or nothing when
  // one is not E4M3 or the row blocks would not line up (a partial block before a concatenation).
  auto grouped_e4m3 = [&](const std::vector<std::vector<std::string>>& keys) -> kernels::Fp8Tensor {
    std::vector<at::Tensor> data, scale;
    for (const auto& parts : keys) {
      std::vector<at::Tensor> d, sc;
      for (size_t i = 0; i < parts.size(); ++i) {
        auto q = r.e4m3_blocks(parts[i]);
        if (!q || (i + 1 < parts.size() && q->data.size(0) % kernels::kFp8BlockSize != 0)) return {};
        d.push_back(q->data.view(at::kByte));
        sc.push_back(q->scale);
      }
      data.push_back(at::cat(d, 0));
      scale.push_back(at::cat(sc, 0));
    }
    return {at::stack(data).view(at::kFloat8_e4m3fn), at::stack(scale), kernels::kFp8BlockSize};
  };
  auto load_one = [&](const std::string& name, at::Tensor& target) {
    static const std::string kGateUp = "mlp.experts.gate_up_proj", kDown = "mlp.experts.down_proj";
    if (ends_with(name, kGateUp) && !r.has(name)) {
      const std::string prefix = name.substr(0, name.size() - std::string("gate_up_proj").size());
      std::vector<at::Tensor> experts;
      std::vector<std::vector<std::string>> keys;
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        const std::string base = prefix + std::to_string(e) + ".";
        keys.push_back({base + "gate_proj.weight", base + "up_proj.weight"});
        experts.push_back(at::cat({r.get(keys.back()[0]), r.get(keys.back()[1])}, 0));
      }
      assign(target, at::stack(experts),
             prefix + "{0.." + std::to_string(c.n_routed_experts - 1) + "}.gate_proj/up_proj.weight", source);
      if (const auto it = experts_of.find(prefix); it != experts_of.end())
        it->second->set_fp8_weights(grouped_e4m3(keys), {});
    } else if (ends_with(name, kDown) && !r.has(name)) {
      const std::string prefix = name.substr(0, name.size() - std::string("down_proj").size());
      std::vector<at::Tensor> experts;
      std::vector<std::vector<std::string>> keys;
      for (int64_t e = 0; e < c.n_routed_experts; ++e) {
        keys.push_back({prefix + std::to_string(e) + ".down_proj.weight"});
        experts.push_back(r.get(keys.back()[0]));
      }
      assign(target, at::stack(experts), prefix + "{e}.down_proj.weight", source);
      if (const auto it = experts_of.find(prefix); it != experts_of.end())
        it->second->set_fp8_weights({}, grouped_e4m3(keys));
    } else {
      assign(target, r.get(name), name, source);
      if (const auto it = linears.find(name); it != linears.end())
        if (auto q = r.e4m3_blocks(name)) it->second->set_fp8_weight(std::move(*q));
    }
  };
  for (auto& p : model.named_parameters())
    load_one(p.key(), p.value());
  for (auto& b : model.named_buffers())
    load_one(b.key(), b.value());
  const auto extra = r.unused(c, model.num_mtp_layers());
  if (!extra.empty()) {
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 8; ++i)
      list += (i ? ", \"" : "\"") + extra[i] + "\"";
    if (extra.size() > 8) list += ", ... (" + std::to_string(extra.size()) + " in all)";
    throw Error("unexpected key(s) the model has no place for: " + list, source);
  }
}

Transformer load_pretrained(const std::string& dir, const LoadOptions& options) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) throw Error("no config.json: not an HF model directory", dir);
  const ModelConfig config = load_hf_config(config_path);
  const auto checkpoint = io::Checkpoint::open(dir);
  // MTP modules are built when the checkpoint has their weights (transformers' own saves do not).
  const bool with_mtp =
      config.num_nextn_predict_layers > 0 &&
      checkpoint.contains("model.layers." + std::to_string(config.num_hidden_layers) + ".eh_proj.weight");
  Transformer model(config, with_mtp);
  load_weights(*model, checkpoint, dir);
  model->cast(options.dtype);
  model->to(options.device);
  return model;
}

std::vector<io::NamedTensor> hf_state_dict(const std::vector<io::NamedTensor>& tensors,
                                           std::optional<at::ScalarType> dtype) {
  std::vector<io::NamedTensor> out;
  auto convert = [&](const std::string& name, const at::Tensor& t) {
    const bool keep_fp32 = ends_with(name, "mlp.gate.weight") || ends_with(name, "e_score_correction_bias");
    return (dtype && !keep_fp32) ? t.detach().to(*dtype) : t.detach();
  };
  static const std::string kGateUp = "mlp.experts.gate_up_proj", kDown = "mlp.experts.down_proj";
  for (const auto& [name, t] : tensors) {
    if (ends_with(name, kGateUp)) {
      const std::string prefix = name.substr(0, name.size() - std::string("gate_up_proj").size());
      const int64_t im = t.size(1) / 2;
      for (int64_t e = 0; e < t.size(0); ++e) {
        const std::string base = prefix + std::to_string(e) + ".";
        out.emplace_back(base + "gate_proj.weight", convert(name, t[e].slice(0, 0, im)));
        out.emplace_back(base + "up_proj.weight", convert(name, t[e].slice(0, im)));
      }
    } else if (ends_with(name, kDown)) {
      const std::string prefix = name.substr(0, name.size() - std::string("down_proj").size());
      for (int64_t e = 0; e < t.size(0); ++e)
        out.emplace_back(prefix + std::to_string(e) + ".down_proj.weight", convert(name, t[e]));
    } else {
      out.emplace_back(name, convert(name, t));
    }
  }
  return out;
}

std::vector<io::NamedTensor> hf_state_dict(TransformerImpl& model, std::optional<at::ScalarType> dtype) {
  std::vector<io::NamedTensor> tensors;
  for (const auto& p : model.named_parameters())
    tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers())
    tensors.emplace_back(b.key(), b.value());
  return hf_state_dict(tensors, dtype);
}

void save_pretrained(const ModelConfig& config, const std::vector<io::NamedTensor>& tensors,
                     const std::string& dir, const SaveOptions& options) {
  io::make_dirs(dir);
  AHA_CHECK(options.dtype.has_value() || !tensors.empty(), "save_pretrained: no tensors to save into ", dir);
  const at::ScalarType dtype = options.dtype.value_or(tensors.front().second.scalar_type());
  ModelConfig c = config;
  c.torch_dtype = dtype == at::kBFloat16 ? "bfloat16" : dtype == at::kHalf ? "float16" : "float32";
  c.quantization_config = nullptr;  // weights are written dequantised
  io::save_checkpoint(dir, hf_state_dict(tensors, dtype), {{"format", "pt"}}, options.max_shard_bytes);
  io::write_file_atomic((fs::path(dir) / "config.json").string(), to_hf_json(c).dump(2) + "\n");
}

void save_pretrained(TransformerImpl& model, const std::string& dir, const SaveOptions& options) {
  std::vector<io::NamedTensor> tensors;
  for (const auto& p : model.named_parameters())
    tensors.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers())
    tensors.emplace_back(b.key(), b.value());
  SaveOptions o = options;
  o.dtype = options.dtype.value_or(model.dtype());
  save_pretrained(model.config(), tensors, dir, o);
}

}  // namespace aha::model
