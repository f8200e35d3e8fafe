#include "aha/model/cpu_experts_grad.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstring>
#include <vector>

#include "cpu_swiglu.h"
#include "expert_pairs.h"

namespace aha::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// rows [P, D]: row i = x[token_at[i]] (x [N, D] contiguous).
at::Tensor gather_rows(const at::Tensor& x, const ExpertPairs& s) {
  const int64_t pairs = static_cast<int64_t>(s.token_at.size()), d = x.size(1);
  at::Tensor rows = at::empty({pairs, d}, x.options());
  const float* xp = x.data_ptr<float>();
  float* rp = rows.data_ptr<float>();
  at::parallel_for(0, pairs, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      std::memcpy(rp + i * d, xp + s.token_at[i] * d, static_cast<size_t>(d) * sizeof(float));
  });
  return rows;
}

// out = a b, written into `out` (a view of a larger tensor).
void mm_into(at::Tensor out, const at::Tensor& a, const at::Tensor& b) {
  at::mm_out(out, a, b);
}

// For each expert with pairs: f(its sorted rows [b, b + c), its index e). With at least two experts per
// thread, the experts go to the threads (largest first) and each GEMM runs on one thread: at the bench shape
// (~190 rows per expert) 0.85-0.9x the time of the same GEMMs one after the other, each split over all
// threads, which is what runs with fewer experts.
template <typename F>
void each_expert(const ExpertPairs& s, F&& f) {
  const int64_t threads = at::get_num_threads();
  if (threads == 1 || static_cast<int64_t>(s.active.size()) < 2 * threads || at::in_parallel_region()) {
    for (const int64_t e : s.active)
      f(s.first[e], s.counts[e], e);
    return;
  }
  for_each_expert_largest_first(s, threads, [&](int64_t e) { f(s.first[e], s.counts[e], e); });
}

// gu [P, 2 Im] -> h [P, Im] = silu(g) u, row by row.
at::Tensor swiglu(const at::Tensor& gu) {
  const int64_t pairs = gu.size(0), im = gu.size(1) / 2;
  at::Tensor h = at::empty({pairs, im}, gu.options());
  const float* g = gu.data_ptr<float>();
  float* hp = h.data_ptr<float>();
  at::parallel_for(0, pairs, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      kernels::silu_mul(g + i * 2 * im, g + i * 2 * im + im, hp + i * im, im);
  });
  return h;
}

class CpuExpertsFunction : public torch::autograd::Function<CpuExpertsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weights,
                               const at::Tensor& gate_up, const at::Tensor& down, const at::Tensor& experts) {
    const at::Tensor xc = x.contiguous(), w = weights.contiguous(), gw = gate_up.contiguous(),
                     dw = down.contiguous();
    const int64_t n = x.size(0), k = experts.size(1), d = x.size(1), im = down.size(2);
    const ExpertPairs s = sort_expert_pairs(experts, gate_up.size(0), "cpu_routed_experts_grad");
    const at::Tensor rows = gather_rows(xc, s);
    at::Tensor gu = at::empty({n * k, 2 * im}, x.options()), ys = at::empty({n * k, d}, x.options());
    each_expert(s, [&](int64_t b, int64_t c, int64_t e) {
      mm_into(gu.narrow(0, b, c), rows.narrow(0, b, c), gw[e].t());
    });
    const at::Tensor h = swiglu(gu);
    each_expert(s, [&](int64_t b, int64_t c, int64_t e) {
      mm_into(ys.narrow(0, b, c), h.narrow(0, b, c), dw[e].t());
    });
    // out[t] = sum over slots of weight * its expert's row, in slot order.
    at::Tensor out = at::empty({n, d}, x.options());
    const float* yp = ys.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, n, 16, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        float* row = op + t * d;
        std::memset(row, 0, static_cast<size_t>(d) * sizeof(float));
        for (int64_t slot = 0; slot < k; ++slot) {
          const float weight = wp[t * k + slot];
          const float* y = yp + s.position[t * k + slot] * d;
          for (int64_t j = 0; j < d; ++j)
            row[j] += y[j] * weight;
        }
      }
    });
    ctx->save_for_backward({xc, w, gw, dw, experts, gu, ys});
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &gw = saved[2], &dw = saved[3], &experts = saved[4],
                     &gu = saved[5], &ys = saved[6];
    const at::Tensor dout = grads[0].contiguous();
    const int64_t n = x.size(0), k = experts.size(1), d = x.size(1), im = dw.size(2), pairs = n * k;
    const ExpertPairs s = sort_expert_pairs(experts, gw.size(0), "cpu_routed_experts_grad");

    // The combine: d weight[t, slot] = <dout[t], y>, d y = weight dout[t] (y: the slot's expert row).
    at::Tensor dweights = at::empty({n, k}, w.options()), dys = at::empty({pairs, d}, x.options());
    {
      const float *gp = dout.data_ptr<float>(), *yp = ys.data_ptr<float>(), *wp = w.data_ptr<float>();
      float *dwp = dweights.data_ptr<float>(), *dyp = dys.data_ptr<float>();
      at::parallel_for(0, n, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          const float* g = gp + t * d;
          for (int64_t slot = 0; slot < k; ++slot) {
            const int64_t i = s.position[t * k + slot];
            const float* y = yp + i * d;
            float* dy = dyp + i * d;
            const float weight = wp[t * k + slot];
            float dot = 0;
            for (int64_t j = 0; j < d; ++j) {
              dot += g[j] * y[j];
              dy[j] = weight * g[j];
            }
            dwp[t * k + slot] = dot;
          }
        }
      });
    }

    // down: dh = dy down[e], d down[e] = dy^T h.
    const at::Tensor h = swiglu(gu);
    at::Tensor dh = at::empty({pairs, im}, x.options());
    at::Tensor ddown = at::empty_like(dw), dgate_up = at::empty_like(gw);
    for (size_t e = 0; e < s.counts.size(); ++e)
      if (s.counts[e] == 0) {  // no pairs: no gradient
        ddown[static_cast<int64_t>(e)].zero_();
        dgate_up[static_cast<int64_t>(e)].zero_();
      }
    each_expert(s, [&](int64_t b, int64_t c, int64_t e) {
      const at::Tensor dy = dys.narrow(0, b, c);
      mm_into(dh.narrow(0, b, c), dy, dw[e]);
      mm_into(ddown[e], dy.t(), h.narrow(0, b, c));
    });

    // SwiGLU.
    at::Tensor dgu = at::empty({pairs, 2 * im}, x.options());
    {
      const float *g = gu.data_ptr<float>(), *dhp = dh.data_ptr<float>();
      float* dg = dgu.data_ptr<float>();
      at::parallel_for(0, pairs, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i)
          kernels::silu_mul_backward(g + i * 2 * im, g + i * 2 * im + im, dhp + i * im, dg + i * 2 * im,
                                     dg + i * 2 * im + im, im);
      });
    }

    // gate_up: d rows = dgu gate_up[e], d gate_up[e] = dgu^T rows.
    const at::Tensor rows = gather_rows(x, s);
    at::Tensor drows = at::empty({pairs, d}, x.options());
    each_expert(s, [&](int64_t b, int64_t c, int64_t e) {
      const at::Tensor dg = dgu.narrow(0, b, c);
      mm_into(drows.narrow(0, b, c), dg, gw[e]);
      mm_into(dgate_up[e], dg.t(), rows.narrow(0, b, c));
    });

    // The gather: each token sums its K rows' gradients, in slot order.
    at::Tensor dx = at::empty({n, d}, x.options());
    {
      const float* rp = drows.data_ptr<float>();
      float* dxp = dx.data_ptr<float>();
      at::parallel_for(0, n, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          float* row = dxp + t * d;
          std::memcpy(row, rp + s.position[t * k] * d, static_cast<size_t>(d) * sizeof(float));
          for (int64_t slot = 1; slot < k; ++slot) {
            const float* r = rp + s.position[t * k + slot] * d;
            for (int64_t j = 0; j < d; ++j)
              row[j] += r[j];
          }
        }
      });
    }
    return {dx, dweights, dgate_up, ddown, at::Tensor()};
  }
};

}  // namespace

at::Tensor cpu_routed_experts_grad(const at::Tensor& x, const at::Tensor& experts, const at::Tensor& weights,
                                   const at::Tensor& gate_up, const at::Tensor& down, at::Tensor* load) {
  check_routed_experts_inputs("cpu_routed_experts_grad", x, experts, weights, gate_up, down, true);
  const at::Tensor ids = experts.cpu().contiguous();
  at::Tensor out = CpuExpertsFunction::apply(x, weights, gate_up, down, ids)[0];
  if (load) *load += at::bincount(ids.reshape({-1}), {}, gate_up.size(0)).to(load->device());
  return out;
}

}  // namespace aha::model
