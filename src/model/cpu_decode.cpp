#include "aha/model/cpu_decode.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "aha/core/error.h"
#include "cpu_lanes.h"
#include "cpu_swiglu.h"
#include "expert_pairs.h"

namespace aha::model {
namespace {

using kernels::kLanes;
using kernels::Lanes;
using kernels::silu_mul;

// y[t, j] = sum_i w[j, i] x[t, i] for C tokens t (x rows `ldx` apart, y rows `ldy` apart) and all `rows` rows
// j of w [rows, in]: each row of w is loaded once for the C tokens, two rows at a time.
template <int C>
AHA_CPU_CLONES void rows_dot(const float* w, int64_t rows, int64_t in, const float* x, int64_t ldx, float* y,
                             int64_t ldy) {
  const int64_t body = in / kLanes * kLanes;
  int64_t j = 0;
  for (; j < rows; j += 2) {
    const bool pair = j + 1 < rows;
    const float* w0 = w + j * in;
    const float* w1 = pair ? w0 + in : w0;
    Lanes a0[C], a1[C];
    for (int t = 0; t < C; ++t)
      a0[t] = a1[t] = Lanes{};
    for (int64_t i = 0; i < body; i += kLanes) {
      Lanes u0, u1;
      AHA_LOAD_LANES(u0, w0 + i);
      AHA_LOAD_LANES(u1, w1 + i);
      for (int t = 0; t < C; ++t) {
        Lanes v;
        AHA_LOAD_LANES(v, x + t * ldx + i);
        a0[t] += u0 * v;
        a1[t] += u1 * v;
      }
    }
    for (int t = 0; t < C; ++t) {
      float s0 = 0, s1 = 0;
      for (int l = 0; l < kLanes; ++l) {
        s0 += a0[t][l];
        s1 += a1[t][l];
      }
      for (int64_t i = body; i < in; ++i) {
        s0 += w0[i] * x[t * ldx + i];
        s1 += w1[i] * x[t * ldx + i];
      }
      y[t * ldy + j] = s0;
      if (pair) y[t * ldy + j + 1] = s1;
    }
  }
}

// y [c, rows] = x [c, in] w^T for any token count c, four tokens at a time.
void dot_rows(const float* w, int64_t rows, int64_t in, const float* x, int64_t c, float* y) {
  int64_t t = 0;
  for (; t + 4 <= c; t += 4)
    rows_dot<4>(w, rows, in, x + t * in, in, y + t * rows, rows);
  switch (c - t) {
    case 3:
      rows_dot<3>(w, rows, in, x + t * in, in, y + t * rows, rows);
      break;
    case 2:
      rows_dot<2>(w, rows, in, x + t * in, in, y + t * rows, rows);
      break;
    case 1:
      rows_dot<1>(w, rows, in, x + t * in, in, y + t * rows, rows);
      break;
    default:
      break;
  }
}

// Token-major GEMM for an expert with many tokens: yT [rows, ld] = w [rows, in] xT [in, ld], the tokens on
// the vector lanes (NV vectors of 8 tokens, ld = 8 NV). Each output is one sequential sum over `in` (a
// separate chain per lane: no horizontal sums, and the same result whatever the instruction set's width or
// the thread count), R rows of w at a time, each weight broadcast to the lanes once. Vectors of 8 tokens (not
// 16): an expert's token count is rounded up to a multiple of 8, and on AVX-512 machines that split 512-bit
// FMAs in two (AMD Zen 4) 8-float FMAs run at the same rate.
constexpr int64_t kTokenLanes = 8;
typedef float TokenLanes __attribute__((vector_size(kTokenLanes * sizeof(float))));

template <int R, int NV>
AHA_CPU_CLONES void rows_outer(const float* w, int64_t rows, int64_t in, const float* xt, float* yt,
                               const float* next) {
  constexpr int64_t ld = NV * kTokenLanes;
  for (int64_t j = 0; j < rows; j += R) {
    TokenLanes acc[R][NV];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        acc[r][v] = TokenLanes{};
    // The weights are read once per call and at ~16 tokens per expert the products wait on memory: while
    // these R rows are multiplied, the next R come in (at the end, the first R rows of `next`, the matrix
    // the caller runs next, when given).
    const float* ahead = j + 2 * R <= rows ? w + (j + R) * in : next;
    for (int64_t i = 0; i < in; ++i) {
      if (ahead && i % 16 == 0)
        for (int r = 0; r < R; ++r)
          __builtin_prefetch(ahead + r * in + i);
      TokenLanes xv[NV];
      for (int v = 0; v < NV; ++v)
        std::memcpy(&xv[v], xt + i * ld + v * kTokenLanes, sizeof(TokenLanes));
      for (int r = 0; r < R; ++r) {
        // A scalar times a vector: one broadcast load per weight. (`TokenLanes{} + w` compiled to an add to
        // zero and a register broadcast per weight, slower than the FMAs themselves.)
        const float b = w[(j + r) * in + i];
        for (int v = 0; v < NV; ++v)
          acc[r][v] += b * xv[v];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        std::memcpy(yt + (j + r) * ld + v * kTokenLanes, &acc[r][v], sizeof(TokenLanes));
  }
}

// `next` (may be null): the matrix (at least 8 rows of `in`) to prefetch the start of at the end.
template <int NV>
void outer(const float* w, int64_t rows, int64_t in, const float* xt, float* yt, const float* next) {
  constexpr int R = 8;
  const int64_t body = rows / R * R;
  rows_outer<R, NV>(w, body, in, xt, yt, body < rows ? nullptr : next);
  if (body < rows)
    rows_outer<1, NV>(w + body * in, rows - body, in, xt, yt + body * NV * kTokenLanes, nullptr);
}

// From this many tokens on, an expert runs token-major (rows_outer): at ~16 tokens per expert (128 rows
// decoding with 4 of 32 experts) the dot-product loops' per-output horizontal sums cost as much as the
// products.
constexpr int64_t kOuterTokens = 8;
// Tokens per token-major block: 3 vectors of 8 (with 8 rows at a time, 24 accumulators).
constexpr int64_t kOuterBlock = 3 * kTokenLanes;

// One expert's SwiGLU over c >= kOuterTokens gathered rows, token-major in blocks of up to kOuterBlock
// tokens: x [c, d] in, y [c, d] out; `scratch` is reused across calls.
void expert_outer(const float* gw, const float* dw, int64_t d, int64_t im, const float* x, int64_t c,
                  float* y, std::vector<float>& scratch) {
  scratch.resize(static_cast<size_t>(kOuterBlock * (2 * d + 3 * im)));
  float* xt = scratch.data();
  float* gt = xt + kOuterBlock * d;
  float* ht = gt + kOuterBlock * 2 * im;
  float* yt = ht + kOuterBlock * im;
  for (int64_t t0 = 0; t0 < c; t0 += kOuterBlock) {
    const int64_t cc = std::min(kOuterBlock, c - t0), nv = (cc + kTokenLanes - 1) / kTokenLanes,
                  ld = nv * kTokenLanes;
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t t = 0; t < cc; ++t)
        xt[i * ld + t] = x[(t0 + t) * d + i];
      for (int64_t t = cc; t < ld; ++t)
        xt[i * ld + t] = 0.0f;
    }
    const auto run = [&](const float* w, int64_t rows, int64_t in, const float* a, float* out,
                         const float* next) {
      if (nv == 1) return outer<1>(w, rows, in, a, out, next);
      if (nv == 2) return outer<2>(w, rows, in, a, out, next);
      outer<3>(w, rows, in, a, out, next);
    };
    const bool last = t0 + kOuterBlock >= c;
    run(gw, 2 * im, d, xt, gt, dw);
    silu_mul(gt, gt + im * ld, ht, im * ld);
    run(dw, d, im, ht, yt, last ? nullptr : gw);
    for (int64_t t = 0; t < cc; ++t)
      for (int64_t j = 0; j < d; ++j)
        y[(t0 + t) * d + j] = yt[j * ld + t];
  }
}

}  // namespace

bool cpu_routed_experts_supported(const at::Tensor& x, const at::Tensor& gate_up, const at::Tensor& down) {
  for (const at::Tensor* t : {&x, &gate_up, &down})
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != at::kFloat) return false;
  return x.dim() == 2 && gate_up.dim() == 3 && down.dim() == 3 && gate_up.size(0) == down.size(0) &&
         gate_up.size(2) == x.size(1) && down.size(1) == x.size(1) && gate_up.size(1) == 2 * down.size(2);
}

at::Tensor cpu_routed_experts(const at::Tensor& x, const at::Tensor& experts, const at::Tensor& weights,
                              const at::Tensor& gate_up, const at::Tensor& down, at::Tensor* load) {
  check_routed_experts_inputs("cpu_routed_experts", x, experts, weights, gate_up, down, false);
  const int64_t n = x.size(0), k = experts.size(1), d = x.size(1), count = gate_up.size(0), im = down.size(2);
  const int64_t pairs = n * k;
  const at::Tensor xc = x.contiguous(), gw = gate_up.contiguous(), dw = down.contiguous();
  const at::Tensor w = weights.cpu().to(at::kFloat).contiguous();
  const ExpertPairs sorted = sort_expert_pairs(experts, count, "cpu_routed_experts");
  const std::vector<int64_t>&first = sorted.first, &counts = sorted.counts, &position = sorted.position,
        &token_at = sorted.token_at;

  // Sorted-pair buffers: gathered inputs, gate|up outputs, activations, expert outputs.
  std::vector<float> xs(static_cast<size_t>(pairs * d)), gu(static_cast<size_t>(pairs * 2 * im)),
      h(static_cast<size_t>(pairs * im)), ys(static_cast<size_t>(pairs * d));
  const float* xp = xc.data_ptr<float>();
  const float* gwp = gw.data_ptr<float>();
  const float* dwp = dw.data_ptr<float>();
  for_each_expert_largest_first(sorted, at::get_num_threads(), [&](int64_t e) {
    thread_local std::vector<float> scratch;
    const int64_t b = first[e], c = counts[e];
    for (int64_t i = b; i < b + c; ++i)
      std::memcpy(&xs[i * d], xp + token_at[i] * d, static_cast<size_t>(d) * sizeof(float));
    if (c >= kOuterTokens) {
      expert_outer(gwp + e * 2 * im * d, dwp + e * d * im, d, im, &xs[b * d], c, &ys[b * d], scratch);
      return;
    }
    dot_rows(gwp + e * 2 * im * d, 2 * im, d, &xs[b * d], c, &gu[b * 2 * im]);
    for (int64_t i = b; i < b + c; ++i)
      silu_mul(&gu[i * 2 * im], &gu[i * 2 * im + im], &h[i * im], im);
    dot_rows(dwp + e * d * im, d, im, &h[b * im], c, &ys[b * d]);
  });

  at::Tensor out = at::empty({n, d}, x.options());
  float* op = out.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  for (int64_t t = 0; t < n; ++t) {
    float* row = op + t * d;
    std::memset(row, 0, static_cast<size_t>(d) * sizeof(float));
    for (int64_t s = 0; s < k; ++s) {
      const float weight = wp[t * k + s];
      const float* y = &ys[position[t * k + s] * d];
      for (int64_t j = 0; j < d; ++j)
        row[j] += y[j] * weight;
    }
  }
  if (load) *load += at::tensor(counts, at::kLong).to(load->device());
  return out;
}

bool cpu_latent_attention_supported(const at::Tensor& q, const at::Tensor& cache, const at::Tensor& mask) {
  for (const at::Tensor* t : {&q, &cache, &mask})
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != at::kFloat) return false;
  return q.dim() == 3 && cache.dim() == 3 && mask.dim() == 2 && cache.size(0) == q.size(0) &&
         cache.size(2) == q.size(2) && cache.stride(2) == 1 && cache.stride(1) == cache.size(2) &&
         mask.size(0) == q.size(0);
}

namespace {

// s[h] = sum_k q[h * R + k] c[k] for `heads` (<= 4) heads: one pass over c for all of them.
template <int H>
AHA_CPU_CLONES void heads_dot(const float* q, int64_t R, const float* c, float* s) {
  Lanes acc[H];
  for (int h = 0; h < H; ++h)
    acc[h] = Lanes{};
  int64_t k = 0;
  for (; k + kLanes <= R; k += kLanes) {
    Lanes cv;
    AHA_LOAD_LANES(cv, c + k);
    for (int h = 0; h < H; ++h) {
      Lanes qv;
      AHA_LOAD_LANES(qv, q + h * R + k);
      acc[h] += qv * cv;
    }
  }
  if (k < R) {
    Lanes cv{};
    std::memcpy(&cv, c + k, static_cast<size_t>(R - k) * sizeof(float));
    for (int h = 0; h < H; ++h) {
      Lanes qv{};
      std::memcpy(&qv, q + h * R + k, static_cast<size_t>(R - k) * sizeof(float));
      acc[h] += qv * cv;
    }
  }
  for (int h = 0; h < H; ++h)
    s[h] = kernels::sum_lanes(acc[h]);
}

// o[j] = sum_l p[l] c[l * R + j] for j < r, up to 8 vectors of o at a time.
AHA_CPU_CLONES void weighted_rows(const float* p, int64_t L, const float* c, int64_t R, int64_t r, float* o) {
  constexpr int64_t kChunk = 8 * kLanes;
  for (int64_t j0 = 0; j0 < r; j0 += kChunk) {
    const int64_t width = std::min(kChunk, r - j0), full = width / kLanes, tail = width % kLanes;
    Lanes acc[8];
    for (int v = 0; v < 8; ++v)
      acc[v] = Lanes{};
    for (int64_t l = 0; l < L; ++l) {
      const float w = p[l];
      const float* row = c + l * R + j0;
      for (int64_t v = 0; v < full; ++v) {
        Lanes x;
        AHA_LOAD_LANES(x, row + v * kLanes);
        acc[v] += w * x;
      }
      if (tail) {
        Lanes x{};
        std::memcpy(&x, row + full * kLanes, static_cast<size_t>(tail) * sizeof(float));
        acc[full] += w * x;
      }
    }
    std::memcpy(o + j0, acc, static_cast<size_t>(width) * sizeof(float));
  }
}

}  // namespace

at::Tensor cpu_latent_attention(const at::Tensor& q_in, const at::Tensor& cache, int64_t length,
                                const at::Tensor& mask_in, double scale, int64_t r) {
  AHA_CHECK(
      cpu_latent_attention_supported(q_in, cache, mask_in) && length >= 1 && length <= cache.size(1) &&
          mask_in.size(1) == length && r >= 1 && r <= q_in.size(2),
      "cpu_latent_attention: needs CPU float32 q [B, H, R], cache [B, >= L, R] with contiguous rows, mask "
      "[B, L], 1 <= r <= R; got q ",
      q_in.sizes(), ", cache ", cache.sizes(), ", mask ", mask_in.sizes(), ", L ", length, ", r ", r);
  const at::Tensor q = q_in.contiguous(), mask = mask_in.contiguous();
  const int64_t b = q.size(0), heads = q.size(1), R = q.size(2), L = length;
  at::Tensor out = at::empty({b, heads, r}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* cp = cache.data_ptr<float>();
  const float* mp = mask.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t row_stride = cache.stride(0);
  const auto fscale = static_cast<float>(scale);
  at::parallel_for(0, b, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> scores(static_cast<size_t>(heads * L)), s4(4);
    for (int64_t row = lo; row < hi; ++row) {
      const float* qb = qp + row * heads * R;
      const float* cb = cp + row * row_stride;
      const float* mb = mp + row * L;
      // Scores [H, L]: each cached latent read once for four heads at a time.
      for (int64_t l = 0; l < L; ++l)
        for (int64_t h = 0; h < heads; h += 4) {
          const int64_t n = std::min<int64_t>(4, heads - h);
          const float* qh = qb + h * R;
          if (n == 4)
            heads_dot<4>(qh, R, cb + l * R, s4.data());
          else if (n == 3)
            heads_dot<3>(qh, R, cb + l * R, s4.data());
          else if (n == 2)
            heads_dot<2>(qh, R, cb + l * R, s4.data());
          else
            heads_dot<1>(qh, R, cb + l * R, s4.data());
          for (int64_t j = 0; j < n; ++j)
            scores[(h + j) * L + l] = s4[j] * fscale + mb[l];
        }
      // Softmax over the positions, then the weighted sum of the latents [:r].
      for (int64_t h = 0; h < heads; ++h) {
        float* s = scores.data() + h * L;
        const float top = *std::max_element(s, s + L);
        float total = 0;
        for (int64_t l = 0; l < L; ++l) {
          s[l] = std::exp(s[l] - top);
          total += s[l];
        }
        const float inv = 1.0f / total;
        for (int64_t l = 0; l < L; ++l)
          s[l] *= inv;
        weighted_rows(s, L, cb, R, r, op + (row * heads + h) * r);
      }
    }
  });
  return out;
}

void check_routed_experts_inputs(const char* who, const at::Tensor& x, const at::Tensor& experts,
                                 const at::Tensor& weights, const at::Tensor& gate_up, const at::Tensor& down,
                                 bool float_weights) {
  const bool weights_ok = !float_weights || (weights.defined() && weights.device().is_cpu() &&
                                             weights.scalar_type() == at::kFloat);
  AHA_CHECK(cpu_routed_experts_supported(x, gate_up, down) && weights_ok, who,
            ": needs CPU float32 x [N, D], ", float_weights ? "weights [N, K], " : "",
            "gate_up [E, 2 * Im, D], down [E, D, Im]; got x ", x.sizes(), " ", x.scalar_type(), " on ",
            x.device(), ", gate_up ", gate_up.sizes(), " ", gate_up.scalar_type(), ", down ", down.sizes(),
            " ", down.scalar_type());
  AHA_CHECK(experts.dim() == 2 && experts.size(0) == x.size(0) && experts.scalar_type() == at::kLong &&
                weights.sizes() == experts.sizes(),
            who, ": experts must be int64 [", x.size(0), ", K] and weights of the same shape, got ",
            experts.sizes(), " ", experts.scalar_type(), " and ", weights.sizes());
}

ExpertPairs sort_expert_pairs(const at::Tensor& experts, int64_t count, const char* who) {
  const at::Tensor ids = experts.cpu().contiguous();
  const int64_t* id = ids.data_ptr<int64_t>();
  ExpertPairs s;
  s.tokens = experts.size(0);
  s.k = experts.size(1);
  const int64_t pairs = s.tokens * s.k;
  s.first.assign(static_cast<size_t>(count) + 1, 0);
  for (int64_t p = 0; p < pairs; ++p) {
    AHA_CHECK(id[p] >= 0 && id[p] < count, who, ": expert id ", id[p], " outside [0, ", count, ")");
    ++s.first[id[p] + 1];
  }
  s.counts.assign(s.first.begin() + 1, s.first.end());
  for (int64_t e = 0; e < count; ++e) {
    if (s.counts[e] > 0) s.active.push_back(e);
    s.first[e + 1] += s.first[e];
  }
  s.position.resize(static_cast<size_t>(pairs));
  s.token_at.resize(static_cast<size_t>(pairs));
  std::vector<int64_t> fill(s.first.begin(), s.first.end() - 1);
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t at = fill[id[p]]++;
    s.position[p] = at;
    s.token_at[at] = p / s.k;
  }
  return s;
}

}  // namespace aha::model
