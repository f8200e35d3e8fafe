// The decode-time cache of multi-head latent attention: per layer, per sequence, per position, only the
// compressed latent [c_kv (kv_lora_rank) | k_pe (qk_rope_head_dim)], normalised and rotated (576 values for
// V3, against 2 * 128 * (128 + 64) for a plain KV cache). The absorbed attention reads it directly
// (transformer.h: decode).
//
// Rows are sequences; positions fill left to right for all rows at once. A row's padding (left padding of a
// prompt, or nothing yet) is marked in `valid`, so attention never sees it. Rows can be gathered
// (`select_rows`), which is how G samples share one prompt's prefill.
#pragma once

#include <ATen/core/Tensor.h>

#include "aha/model/config.h"

namespace aha::model {

struct KvCache {
  at::Tensor latent;     // [layers, B, capacity, kv_lora_rank + qk_rope_head_dim]
  at::Tensor valid;      // [B, capacity] bool: a real token was written here
  at::Tensor positions;  // [B] int64: RoPE position of the next token of each row (its real tokens so far)
  int64_t length = 0;    // positions filled, the same for every row

  static KvCache create(const ModelConfig& c, int64_t batch, int64_t capacity, at::ScalarType dtype,
                        const at::Device& device);

  int64_t batch() const { return latent.size(1); }
  int64_t capacity() const { return latent.size(2); }
  // Bytes the cache holds per token across layers (what decoding memory grows by).
  int64_t bytes_per_token() const { return latent.size(0) * latent.size(3) * latent.element_size(); }

  // A cache whose row i is row index[i] of this one (index [B'] int64): e.g. repeat each prompt G times.
  KvCache select_rows(const at::Tensor& index) const;
};

}  // namespace aha::model
