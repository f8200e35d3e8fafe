#include "aha/model/summary.h"

#include <gtest/gtest.h>

#include "aha/model/transformer.h"
#include "model_fixtures.h"

namespace {

int64_t numel(torch::nn::Module& m, bool mtp_only) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters()) {
    const bool is_mtp = p.key().rfind("model.layers.3.", 0) == 0;
    if (is_mtp == mtp_only) n += p.value().numel();
  }
  for (const auto& b : m.named_buffers()) {
    const bool is_mtp = b.key().rfind("model.layers.3.", 0) == 0;
    if (is_mtp == mtp_only) n += b.value().numel();
  }
  return n;
}

TEST(Summary, CountsEqualTheBuiltModelsTensors) {
  for (const auto& name : aha::test::parity_fixtures()) {
    const auto c = aha::model::load_hf_config(aha::test::model_fixture(name) + "/config.json");
    aha::model::Transformer model(c, /*with_mtp=*/true);
    const auto s = aha::model::summarize(c);
    EXPECT_EQ(s.total_parameters, numel(*model, false)) << name;
    if (c.num_nextn_predict_layers == 1 && c.num_hidden_layers == 3) {
      EXPECT_EQ(s.mtp_parameters, numel(*model, true)) << name;
    }
    EXPECT_EQ(s.dense_layers + s.moe_layers, c.num_hidden_layers);
  }
}

TEST(Summary, DeepSeekV3Is671BWith37BActive) {
  aha::model::ModelConfig v3;  // the defaults are V3's, except max_position_embeddings and rope_scaling
  const auto s = aha::model::summarize(v3);
  EXPECT_NEAR(s.total_parameters / 1e9, 671.0, 1.0);
  EXPECT_NEAR(s.active_parameters / 1e9, 37.5, 1.0);
  EXPECT_NEAR((s.total_parameters + s.mtp_parameters) / 1e9, 685.0, 2.0);  // the released checkpoint's size
  EXPECT_EQ(s.kv_cache_values_per_token, 61 * 576);
  EXPECT_EQ(s.dense_layers, 3);
  EXPECT_EQ(s.layer_map.substr(0, 7), "D D D M");
}

}  // namespace
