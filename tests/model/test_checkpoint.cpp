// HF checkpoints: save -> load round trips, the key layouts accepted, FP8 block dequantisation, and errors
// that name the key and both shapes.
#include "aha/model/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/utils.h>

#include <filesystem>

#include "../support/sha256.h"
#include "aha/io/file.h"
#include "model_fixtures.h"

namespace fs = std::filesystem;
using aha::test::fixture_inputs;
using aha::test::model_fixture;
using ::testing::HasSubstr;

namespace {

std::string fresh_dir(const std::string& name) {
  const auto d = fs::temp_directory_path() / ("aha_ckpt_" + name);
  fs::remove_all(d);
  return d.string();
}

// A copy of fixture `name` whose tensors went through `edit`.
std::string edited_copy(const std::string& name,
                        const std::function<void(std::vector<aha::io::NamedTensor>&)>& edit) {
  const std::string dir = fresh_dir(name + "_edited");
  fs::create_directories(dir);
  fs::copy_file(model_fixture(name) + "/config.json", dir + "/config.json");
  auto tensors = aha::io::Checkpoint::open(model_fixture(name)).names();
  const auto ckpt = aha::io::Checkpoint::open(model_fixture(name));
  std::vector<aha::io::NamedTensor> all;
  for (const auto& n : ckpt.names())
    all.emplace_back(n, ckpt.tensor(n).clone());
  edit(all);
  aha::io::save_safetensors(dir + "/model.safetensors", all);
  return dir;
}

std::string load_error(const std::string& dir) {
  try {
    aha::model::load_pretrained(dir);
  } catch (const aha::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Checkpoint, SaveThenLoadRoundTripsExactly) {
  torch::NoGradGuard no_grad;
  for (const std::string name : {"yarn_qlora_groups", "plain_no_qlora", "yarn_mtp_sharded"}) {
    auto model = aha::model::load_pretrained(model_fixture(name));
    const std::string dir = fresh_dir(name);
    aha::model::save_pretrained(*model, dir,
                                {.dtype = std::nullopt, .max_shard_bytes = 1'000'000});  // several shards
    EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json")) << name;
    auto back = aha::model::load_pretrained(dir);
    EXPECT_EQ(back->num_mtp_layers(), model->num_mtp_layers());
    auto a = model->named_parameters(), b = back->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& p : a)
      EXPECT_TRUE(at::equal(p.value(), b[p.key()])) << p.key();
    const auto in = fixture_inputs(name);
    EXPECT_TRUE(at::equal(model->forward(in).logits, back->forward(in).logits)) << name;
    // transformers' layout on disk: experts per expert, the routing bias in fp32, transformers' config keys.
    const auto ckpt = aha::io::Checkpoint::open(dir);
    const std::string last = "model.layers." + std::to_string(model->config().num_hidden_layers - 1);
    EXPECT_TRUE(ckpt.contains(last + ".mlp.experts.15.down_proj.weight")) << name;
    EXPECT_FALSE(ckpt.contains(last + ".mlp.experts.down_proj")) << name;
    const auto config = aha::read_json_file(dir + "/config.json");
    EXPECT_EQ(config["model_type"], "deepseek_v3");
    EXPECT_TRUE(config.contains("rope_parameters"));
  }
}

// scripts/check_aha_checkpoints_in_transformers.sh loaded these saves in transformers and recorded the logit
// difference and the files' hashes: aha must still write exactly those bytes.
TEST(Checkpoint, SavesTheBytesTransformersWasShownToLoad) {
  const aha::Json record = aha::read_json_file(model_fixture("aha_saved.json"));
  for (const std::string name : {"yarn_mtp_sharded", "plain_no_qlora", "fp8_blocks"}) {
    ASSERT_TRUE(record.contains(name)) << name;
    EXPECT_LE(record[name]["transformers_max_abs_diff"].get<double>(), 1e-4) << name;
    auto model = aha::model::load_pretrained(model_fixture(name));
    const std::string dir = fresh_dir("hf_" + name);
    aha::model::save_pretrained(*model, dir, {.dtype = std::nullopt, .max_shard_bytes = 1'000'000});
    size_t files = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string file = entry.path().filename().string();
      ASSERT_TRUE(record[name]["files"].contains(file)) << name << ": unexpected file " << file;
      EXPECT_EQ(aha::test::sha256_hex(aha::io::read_file(entry.path().string())),
                record[name]["files"][file].get<std::string>())
          << name << "/" << file;
      ++files;
    }
    EXPECT_EQ(files, record[name]["files"].size()) << name;
  }
}

TEST(Checkpoint, SavesBf16WithTheRouterInFp32) {
  auto model = aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));
  const std::string dir = fresh_dir("bf16");
  aha::model::save_pretrained(*model, dir, {.dtype = at::kBFloat16, .max_shard_bytes = 5'000'000'000ull});
  const auto ckpt = aha::io::Checkpoint::open(dir);
  EXPECT_EQ(ckpt.entry("model.layers.0.self_attn.kv_b_proj.weight").dtype, aha::io::st::Dtype::BF16);
  EXPECT_EQ(ckpt.entry("model.layers.1.mlp.gate.weight").dtype, aha::io::st::Dtype::F32);
  EXPECT_EQ(ckpt.entry("model.layers.1.mlp.gate.e_score_correction_bias").dtype, aha::io::st::Dtype::F32);
  EXPECT_EQ(aha::read_json_file(dir + "/config.json")["dtype"], "bfloat16");
  EXPECT_NO_THROW(aha::model::load_pretrained(dir));
}

TEST(Checkpoint, MtpLayersLoadWhenPresentAndPredictFurtherTokens) {
  auto with = aha::model::load_pretrained(model_fixture("yarn_mtp_sharded"));
  EXPECT_EQ(with->num_mtp_layers(), 1);
  auto without =
      aha::model::load_pretrained(model_fixture("yarn_qlora_groups"));  // config says 1, no weights
  EXPECT_EQ(without->num_mtp_layers(), 0);
  auto in = fixture_inputs("yarn_mtp_sharded");
  in.compute_mtp = true;
  const auto out = with->forward(in);
  ASSERT_EQ(out.mtp_logits.size(), 1u);
  EXPECT_EQ(out.mtp_logits[0].sizes(), (std::vector<int64_t>{3, 10, 512}));
  EXPECT_FALSE(at::isnan(out.mtp_logits[0]).any().item<bool>());
  // The loss by hand: cross-entropy of row i against token i + 2 where both ends are real, times lambda
  // (depth 1).
  const at::Tensor loss = aha::model::mtp_loss(out, in.input_ids, in.attention_mask, 0.3);
  const at::Tensor m = in.attention_mask.to(at::kBool);
  double sum = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t i = 0; i + 2 < 11; ++i) {
      if (!m[b][i].item<bool>() || !m[b][i + 2].item<bool>()) continue;
      const at::Tensor row = out.mtp_logits[0][b][i].detach();
      sum += (row.logsumexp(0) - row[in.input_ids[b][i + 2].item<int64_t>()]).item<double>();
      ++count;
    }
  }
  EXPECT_NEAR(loss.item<double>(), 0.3 * sum / count, 1e-5);
  loss.backward();
  for (const auto& p : with->named_parameters()) {
    if (p.key().rfind("model.layers.3.", 0) == 0 && p.key().find("mlp.experts") == std::string::npos &&
        p.key().find("mlp.gate") == std::string::npos) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(Checkpoint, Fp8BlocksDequantiseExactlyWithPartialEdgeBlocks) {
  const auto ckpt = aha::io::Checkpoint::open(model_fixture("fp8_blocks"));
  const std::string key = "model.layers.0.self_attn.kv_b_proj.weight";
  EXPECT_EQ(ckpt.entry(key).dtype, aha::io::st::Dtype::F8_E4M3);
  const at::Tensor w = aha::model::dequantize_fp8_blocks(ckpt.tensor(key), ckpt.tensor(key + "_scale_inv"));
  const at::Tensor want =
      aha::io::SafetensorsFile::open(model_fixture("fp8_blocks") + "/expected.safetensors")
          .tensor("dequant." + key);
  EXPECT_TRUE(at::equal(w, want));
  EXPECT_THROW(aha::model::dequantize_fp8_blocks(ckpt.tensor(key), at::ones({1, 1})), aha::Error);
  // A missing scale is named.
  const std::string dir = edited_copy("fp8_blocks", [&](auto& all) {
    std::erase_if(all, [&](const auto& nt) { return nt.first == key + "_scale_inv"; });
  });
  EXPECT_THAT(load_error(dir), HasSubstr("\"" + key + "\" has no \"" + key + "_scale_inv\""));
}

TEST(Checkpoint, MissingUnexpectedAndMisshapenKeysAreNamed) {
  const std::string missing = edited_copy("yarn_qlora_groups", [](auto& all) {
    std::erase_if(all, [](const auto& nt) { return nt.first == "model.layers.2.self_attn.o_proj.weight"; });
  });
  EXPECT_THAT(load_error(missing), HasSubstr("missing key \"model.layers.2.self_attn.o_proj.weight\""));
  const std::string extra = edited_copy("yarn_qlora_groups", [](auto& all) {
    all.emplace_back("model.layers.0.mlp.surprise.weight", at::zeros({2}));
  });
  EXPECT_THAT(
      load_error(extra),
      HasSubstr("unexpected key(s) the model has no place for: \"model.layers.0.mlp.surprise.weight\""));
  const std::string misshapen = edited_copy("yarn_qlora_groups", [](auto& all) {
    for (auto& nt : all)
      if (nt.first == "model.layers.1.self_attn.kv_b_proj.weight") nt.second = at::zeros({256, 31});
  });
  EXPECT_THAT(
      load_error(misshapen),
      HasSubstr(
          "shape mismatch for \"model.layers.1.self_attn.kv_b_proj.weight\": the model expects [256, 32], "
          "the checkpoint has [256, 31]"));
  const std::string expert_missing = edited_copy("yarn_qlora_groups", [](auto& all) {
    std::erase_if(all,
                  [](const auto& nt) { return nt.first == "model.layers.2.mlp.experts.7.up_proj.weight"; });
  });
  EXPECT_THAT(load_error(expert_missing),
              HasSubstr("missing key \"model.layers.2.mlp.experts.7.up_proj.weight\""));
  EXPECT_THAT(load_error("/no/such/model"), HasSubstr("no config.json"));
}

TEST(ModelConfig, ReadsBothRopeSpellingsAndRejectsInconsistentConfigs) {
  aha::Json j = aha::read_json_file(model_fixture("yarn_qlora_groups") + "/config.json");
  const auto a = aha::model::from_hf_json(j, "config.json");
  ASSERT_TRUE(a.rope_scaling.has_value());
  EXPECT_EQ(a.rope_scaling->factor, 40);
  EXPECT_EQ(a.q_lora_rank, 48);
  // transformers 4.x spelling: rope_theta + rope_scaling {type: yarn, ...}.
  aha::Json legacy = j;
  legacy.erase("rope_parameters");
  legacy["rope_theta"] = 10000.0;
  legacy["rope_scaling"] = {
      {"type", "yarn"},       {"factor", 40},   {"original_max_position_embeddings", 4096},
      {"beta_fast", 32},      {"beta_slow", 1}, {"mscale", 1.0},
      {"mscale_all_dim", 1.0}};
  const auto b = aha::model::from_hf_json(legacy, "legacy.json");
  EXPECT_TRUE(at::equal(aha::model::Rope(a).inv_freq(), aha::model::Rope(b).inv_freq()));
  EXPECT_EQ(aha::model::Rope(a).softmax_scale(), aha::model::Rope(b).softmax_scale());
  EXPECT_NEAR(aha::model::Rope(a).softmax_scale(), 0.2704675577217602,
              1e-12);  // transformers' value (meta.json)

  auto error_of = [&](const std::function<void(aha::Json&)>& edit) {
    aha::Json bad = j;
    edit(bad);
    try {
      aha::model::from_hf_json(bad, "config.json");
    } catch (const aha::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error_of([](auto& c) { c["num_key_value_heads"] = 2; }),
              HasSubstr("config.json: num_key_value_heads"));
  EXPECT_THAT(error_of([](auto& c) { c["topk_group"] = 5; }),
              HasSubstr("config.json: topk_group: topk_group (5) is greater than n_group (4)"));
  EXPECT_THAT(error_of([](auto& c) { c["n_routed_experts"] = 18; }),
              HasSubstr("n_routed_experts (18) is not divisible by n_group (4)"));
  EXPECT_THAT(error_of([](auto& c) { c["hidden_size"] = "64"; }),
              HasSubstr("config.json: hidden_size: expected an integer"));
  EXPECT_THAT(error_of([](auto& c) { c["model_type"] = "llama"; }),
              HasSubstr("aha implements \"deepseek_v3\""));
  EXPECT_THAT(error_of([](auto& c) {
                c["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {64, 64}}};
              }),
              HasSubstr("only [128, 128] blocks"));
  EXPECT_EQ(error_of([](auto& c) { c["unrelated_field"] = 1; }),
            "no error");  // HF extras are not ours to judge
}

}  // namespace
