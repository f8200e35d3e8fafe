// Sums the gradients of a data-parallel model over ranks while the backward pass still runs: the parameters
// are grouped into flat buckets in reverse order (gradients become final roughly in reverse of the forward
// pass), and a bucket's all-reduce starts as soon as autograd has accumulated every gradient in it, so the
// last layers' gradients travel while the first layers' are still being computed.
//
// Use: every micro-batch but the last accumulates locally as usual (no communication); arm(loss) before the
// backward of the last one; finish() after it, on every rank, even one that had no micro-batch at all.
//
// What must hold:
// - every rank starts the same all-reduces in the same order: bucket k only after buckets 0..k-1, whichever
//   gradients arrive first; parameters the loss does not reach count as ready at arm(), and finish() starts
//   what the backward pass did not (a parameter reached without receiving a gradient, a rank without
//   micro-batches);
// - a parameter with no gradient on any rank keeps an undefined gradient (AdamW then skips it, as in one
//   process); undefined on some ranks counts as zeros there. Each bucket carries one indicator element per
//   parameter (1 where this rank has a gradient) so that this needs no extra collective;
// - a World without a process group (one process) installs no hook and does nothing;
// - CUDA: the hook copies a gradient on the stream autograd runs its accumulation on, which is the caller's
//   current stream when the forward pass ran there (the trainer's case); finish() waits and copies back on
//   the caller's current stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace aha::dist {

class World;

class GradReducer {
 public:
  // `params`: the leaf tensors whose gradients are summed (the optimizer's), in forward order. Buckets hold
  // at most `bucket_bytes` of gradients of one dtype and device (a larger tensor is a bucket of its own).
  GradReducer(std::shared_ptr<World> world, std::vector<at::Tensor> params, int64_t bucket_bytes);
  ~GradReducer();  // removes the hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Whether it reduces anything (the World has a process group).
  bool active() const;
  int64_t buckets() const;

  // The next backward pass, from `loss`, completes the gradients: from now on each parameter's gradient is
  // copied into its bucket once autograd has accumulated it, and full buckets start their all-reduce in
  // order. Parameters that `loss` does not depend on are final already and count as ready at once (as DDP's
  // find_unused_parameters does), so that an unused module does not hold its bucket back to finish().
  void arm(const at::Tensor& loss);
  // Starts what the backward pass did not, waits for every bucket and writes the sums into the gradients.
  // Every rank calls it, armed or not; afterwards it is disarmed.
  void finish();

  // Buckets started since arm() (tests read it from inside the backward pass).
  int64_t launched() const;
  // What the last finish() found and cost.
  struct Report {
    int64_t buckets = 0;
    int64_t during_backward = 0;  // buckets already started when finish() was called
    double finish_seconds = 0;    // time spent in finish(): the remaining copies, waiting, copying back
  };
  const Report& last() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aha::dist
