// The seam through which TransformerImpl runs its decoder layers (the MTP modules' included), for what wraps
// a layer's forward and backward without the model knowing about it: activation checkpointing (run the layer
// without keeping its activations, recompute them in the backward pass) and fully sharded parameters (gather
// the layer's weights just before it runs, free them after, gather them again for its backward pass). Both
// live in dist/sharding.h; without a runner the model calls each layer directly.
//
// What must hold: `body` is a pure function of its input and of the layer's weights (no dropout, no random
// draws), so that running it twice gives the same result; with `recompute` true it must not repeat side
// effects of the first run (the MoE layers' routed-token counts).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

namespace aha::model {

struct LayerOutput {
  at::Tensor hidden;  // [B, T, D]
  // A second differentiable output, or undefined: a MoE layer's sequence-wise balance loss (scalar), an MTP
  // module's logits [B, T - k, V].
  at::Tensor aux;
};

// Layer `index`'s forward from its input hidden state; `recompute`: a second run for the backward pass.
using LayerBody = std::function<LayerOutput(const at::Tensor& h, bool recompute)>;

class LayerRunner {
 public:
  virtual ~LayerRunner() = default;
  // Runs `body` on `h` for layer `index` (0-based over model.layers, MTP modules after the decoder layers)
  // and returns what it returns, differentiable with respect to `h` and the layer's parameters.
  virtual LayerOutput run(int64_t index, const at::Tensor& h, const LayerBody& body) = 0;
};

}  // namespace aha::model
