// sm_90a FP8 kernels: block-scaled E4M3 quantisation (bit-exact with kernels/fp8_ref.cpp) and the
// block-scaled "NT" GEMM with fp32 promotion per 128-wide K block (plain and grouped for MoE experts).
//
// The GEMM here is the correct, simple baseline: mma.sync m16n8k32 e4m3 tensor-core instructions, 128x128x128
// tiles staged through shared memory by plain 16-byte loads, one K block per main-loop step, so the promotion
// of the partial sums with the two scales happens in registers at the end of every step. It serves every
// operand layout (the weight-gradient GEMM's 1x128-scaled b too); the pipelined wgmma + TMA kernel for b in
// 128x128 blocks is kernels/fp8_wgmma.cu.
#define AHA_WITH_CUDA 1
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "fp8.cuh"

namespace aha::kernels {
namespace {

__device__ __forceinline__ float load_as_float(const void* x, int bf16, int64_t i) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(x)[i]) : static_cast<const float*>(x)[i];
}

// Same rule as fp8_group_scale: IEEE division (nvcc's default -prec-div=true), ue8m0 on the bits.
__device__ __forceinline__ float group_scale(float amax, int ue8m0) {
  float s = fmaxf(amax, kFp8MinAmax) / kE4m3Max;
  if (ue8m0) {
    unsigned u = __float_as_uint(s);
    if (u & 0x7fffffu) u = (u & 0xff800000u) + 0x800000u;
    s = __uint_as_float(u & 0xff800000u);
  }
  return s;
}

// Round to nearest even, saturating at +-448: e4m3_from_float.
__device__ __forceinline__ uint8_t to_e4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// One warp per (row, 128-group): each lane holds 4 elements.
__global__ void quantize_rows_kernel(const void* __restrict__ x, int bf16, int64_t rows, int64_t cols,
                                     int ue8m0, uint8_t* __restrict__ q, float* __restrict__ s) {
  const int64_t groups = (cols + kFp8Group - 1) / kFp8Group;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= rows * groups) return;
  const int64_t row = warp / groups, c0 = (warp % groups) * kFp8Group;
  float v[4];
  float amax = 0;
  for (int i = 0; i < 4; ++i) {
    const int64_t c = c0 + lane * 4 + i;
    v[i] = c < cols ? load_as_float(x, bf16, row * cols + c) : 0.0f;
    amax = fmaxf(amax, fabsf(v[i]));
  }
  const float scale = group_scale(warp_max(amax), ue8m0);
  for (int i = 0; i < 4; ++i) {
    const int64_t c = c0 + lane * 4 + i;
    if (c < cols) q[row * cols + c] = to_e4m3(v[i] / scale);
  }
  if (lane == 0) s[row * groups + warp % groups] = scale;
}

// A block takes 128 rows x 32 columns of x through shared memory (coalesced reads along the columns) and
// writes those 32 rows of q = quantise(x^T), 128 contiguous bytes each; each warp owns 4 of the columns.
__global__ void quantize_rows_transposed_kernel(const void* __restrict__ x, int bf16, int64_t rows,
                                                int64_t cols, int ue8m0, uint8_t* __restrict__ q,
                                                float* __restrict__ s) {
  __shared__ float tile[kFp8Group][33];
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kFp8Group, c0 = static_cast<int64_t>(blockIdx.x) * 32;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int r = warp; r < kFp8Group; r += 8) {
    const int64_t gr = r0 + r, gc = c0 + lane;
    tile[r][lane] = (gr < rows && gc < cols) ? load_as_float(x, bf16, gr * cols + gc) : 0.0f;
  }
  __syncthreads();
  const int64_t groups = (rows + kFp8Group - 1) / kFp8Group;
  for (int j = warp * 4; j < warp * 4 + 4; ++j) {
    const int64_t gc = c0 + j;
    if (gc >= cols) break;
    float amax = 0;
    for (int i = 0; i < 4; ++i)
      amax = fmaxf(amax, fabsf(tile[lane * 4 + i][j]));
    const float scale = group_scale(warp_max(amax), ue8m0);
    for (int i = 0; i < 4; ++i) {
      const int64_t gr = r0 + lane * 4 + i;
      if (gr < rows) q[gc * rows + gr] = to_e4m3(tile[lane * 4 + i][j] / scale);
    }
    if (lane == 0) s[gc * groups + blockIdx.y] = scale;
  }
}

// One block of 256 threads per 128x128 weight block: amax through shared memory, then the stores.
__global__ void quantize_blocks_kernel(const void* __restrict__ w, int bf16, int64_t rows, int64_t cols,
                                       int ue8m0, uint8_t* __restrict__ q, float* __restrict__ s) {
  __shared__ float warp_amax[8];
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kFp8Group,
                c0 = static_cast<int64_t>(blockIdx.x) * kFp8Group;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float amax = 0;
  for (int i = threadIdx.x; i < kFp8Group * kFp8Group; i += blockDim.x) {
    const int64_t r = r0 + i / kFp8Group, c = c0 + i % kFp8Group;
    if (r < rows && c < cols) amax = fmaxf(amax, fabsf(load_as_float(w, bf16, r * cols + c)));
  }
  amax = warp_max(amax);
  if (lane == 0) warp_amax[warp] = amax;
  __syncthreads();
  amax = 0;
  for (int i = 0; i < 8; ++i)
    amax = fmaxf(amax, warp_amax[i]);
  const float scale = group_scale(amax, ue8m0);
  for (int i = threadIdx.x; i < kFp8Group * kFp8Group; i += blockDim.x) {
    const int64_t r = r0 + i / kFp8Group, c = c0 + i % kFp8Group;
    if (r < rows && c < cols) q[r * cols + c] = to_e4m3(load_as_float(w, bf16, r * cols + c) / scale);
  }
  if (threadIdx.x == 0) s[blockIdx.y * gridDim.x + blockIdx.x] = scale;
}

// ---- GEMM
// ------------------------------------------------------------------------------------------------------
constexpr int kTile = 128;             // BM = BN = BK
constexpr int kRowBytes = kTile + 16;  // padded smem row: fragment loads hit 32 distinct banks
constexpr int kThreads = 256;          // 8 warps: 2 along M x 4 along N, a 64x32 warp tile each
constexpr int kMmaM = 4, kMmaN = 4;    // m16 x n8 mma tiles per warp

__device__ __forceinline__ void mma_e4m3(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Copies rows [row0, row0 + 128) x bytes [k0, k0 + 128) of a [rows, k] E4M3 matrix into smem, zeros outside.
__device__ __forceinline__ void load_tile(uint8_t* smem, const uint8_t* __restrict__ g, int64_t row0,
                                          int64_t rows, int64_t k0, int64_t k) {
  for (int i = threadIdx.x; i < kTile * kTile / 16; i += kThreads) {
    const int r = i / (kTile / 16), chunk = i % (kTile / 16);
    const int64_t gr = row0 + r, gk = k0 + chunk * 16;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (gr < rows && gk < k) v = *reinterpret_cast<const uint4*>(g + gr * k + gk);
    *reinterpret_cast<uint4*>(smem + r * kRowBytes + chunk * 16) = v;
  }
}

__global__ void __launch_bounds__(kThreads) gemm_nt_kernel(Fp8GemmParams p) {
  __shared__ __align__(16) uint8_t a_s[kTile * kRowBytes];
  __shared__ __align__(16) uint8_t b_s[kTile * kRowBytes];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTile, n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  int64_t group = 0;
  if (p.m_group) {
    group = p.m_group[m0];  // every group starts at a multiple of 128: one group per tile
    if (group < 0) return;  // padding rows only; the output was zeroed
  }
  const int64_t kb_count = (p.k + kFp8Group - 1) / kFp8Group;
  const int64_t nb_count = (p.n + p.b_block_rows - 1) / p.b_block_rows;
  const uint8_t* b = p.b + group * p.n * p.k;
  const float* sb = p.sb + group * nb_count * kb_count;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
  const int g = lane / 4, t = lane % 4;

  float acc[kMmaM][kMmaN][4] = {};
  for (int64_t kb = 0; kb < kb_count; ++kb) {
    __syncthreads();
    load_tile(a_s, p.a, m0, p.m, kb * kTile, p.k);
    load_tile(b_s, b, n0, p.n, kb * kTile, p.k);
    __syncthreads();
    float part[kMmaM][kMmaN][4] = {};
#pragma unroll
    for (int kk = 0; kk < kTile; kk += 32) {
      uint32_t af[kMmaM][4], bf[kMmaN][2];
#pragma unroll
      for (int i = 0; i < kMmaM; ++i) {
        const uint8_t* base = a_s + (wm + i * 16 + g) * kRowBytes + kk + t * 4;
        af[i][0] = *reinterpret_cast<const uint32_t*>(base);
        af[i][1] = *reinterpret_cast<const uint32_t*>(base + 8 * kRowBytes);
        af[i][2] = *reinterpret_cast<const uint32_t*>(base + 16);
        af[i][3] = *reinterpret_cast<const uint32_t*>(base + 8 * kRowBytes + 16);
      }
#pragma unroll
      for (int j = 0; j < kMmaN; ++j) {
        const uint8_t* base = b_s + (wn + j * 8 + g) * kRowBytes + kk + t * 4;
        bf[j][0] = *reinterpret_cast<const uint32_t*>(base);
        bf[j][1] = *reinterpret_cast<const uint32_t*>(base + 16);
      }
#pragma unroll
      for (int i = 0; i < kMmaM; ++i)
#pragma unroll
        for (int j = 0; j < kMmaN; ++j)
          mma_e4m3(part[i][j], af[i], bf[j]);
    }
// Promotion: acc += partial * sa[row, kb] * sb[col / b_block_rows, kb].
#pragma unroll
    for (int i = 0; i < kMmaM; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = m0 + wm + i * 16 + g + h * 8;
        const float sa = row < p.m ? p.sa[row * kb_count + kb] : 0.0f;
#pragma unroll
        for (int j = 0; j < kMmaN; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int64_t col = n0 + wn + j * 8 + t * 2 + e;
            const float s_b = col < p.n ? sb[(col / p.b_block_rows) * kb_count + kb] : 0.0f;
            acc[i][j][h * 2 + e] += part[i][j][h * 2 + e] * sa * s_b;
          }
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kMmaM; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = m0 + wm + i * 16 + g + h * 8;
      if (row >= p.m || (p.m_group && p.m_group[row] != group)) continue;
#pragma unroll
      for (int j = 0; j < kMmaN; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t col = n0 + wn + j * 8 + t * 2 + e;
          if (col >= p.n) continue;
          const float v = acc[i][j][h * 2 + e];
          if (p.c_bf16)
            static_cast<__nv_bfloat16*>(p.c)[row * p.n + col] = __float2bfloat16(v);
          else
            static_cast<float*>(p.c)[row * p.n + col] = v;
        }
      }
    }
  }
}

unsigned grid_1d(int64_t threads, int per_block) {
  return static_cast<unsigned>((threads + per_block - 1) / per_block);
}

}  // namespace

int sm90_fp8_quantize_rows(const void* x, int in_bf16, int64_t rows, int64_t cols, int ue8m0, uint8_t* q,
                           float* s, void* stream) {
  const int64_t warps = rows * ((cols + kFp8Group - 1) / kFp8Group);
  if (warps == 0) return 0;
  quantize_rows_kernel<<<grid_1d(warps * 32, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      x, in_bf16, rows, cols, ue8m0, q, s);
  return static_cast<int>(cudaGetLastError());
}

int sm90_fp8_quantize_rows_transposed(const void* x, int in_bf16, int64_t rows, int64_t cols, int ue8m0,
                                      uint8_t* q, float* s, void* stream) {
  if (rows == 0 || cols == 0) return 0;
  const dim3 grid(static_cast<unsigned>((cols + 31) / 32),
                  static_cast<unsigned>((rows + kFp8Group - 1) / kFp8Group));
  quantize_rows_transposed_kernel<<<grid, 256, 0, static_cast<cudaStream_t>(stream)>>>(x, in_bf16, rows, cols,
                                                                                       ue8m0, q, s);
  return static_cast<int>(cudaGetLastError());
}

int sm90_fp8_quantize_blocks(const void* w, int in_bf16, int64_t rows, int64_t cols, int ue8m0, uint8_t* q,
                             float* s, void* stream) {
  if (rows == 0 || cols == 0) return 0;
  const dim3 grid(static_cast<unsigned>((cols + kFp8Group - 1) / kFp8Group),
                  static_cast<unsigned>((rows + kFp8Group - 1) / kFp8Group));
  quantize_blocks_kernel<<<grid, 256, 0, static_cast<cudaStream_t>(stream)>>>(w, in_bf16, rows, cols, ue8m0,
                                                                              q, s);
  return static_cast<int>(cudaGetLastError());
}

int sm90_fp8_gemm_nt(const Fp8GemmParams& p, void* stream) {
  if (p.m == 0 || p.n == 0) return 0;
  const dim3 grid(static_cast<unsigned>((p.n + kTile - 1) / kTile),
                  static_cast<unsigned>((p.m + kTile - 1) / kTile));
  gemm_nt_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace aha::kernels
