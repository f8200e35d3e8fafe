// sm_90a block-scaled FP8 GEMM on warpgroup MMA (wgmma) fed by the Tensor Memory Accelerator (TMA): the
// Hopper kernel of kernels/fp8.cuh ("NT", fp32 promotion per 128-wide K block, plain and grouped).
//
// Block: 128x128 output tile, 3 warpgroups (384 threads).
// - Warpgroup 0 produces: one thread issues, per 128-wide K block, two 2-D TMA loads (A's 128 rows x 128
// bytes
//   and B's 128 rows x 128 bytes, 128-byte swizzle) into one of kStages shared-memory stages, announced on
//   the stage's "full" mbarrier with the bytes to expect. Out-of-range rows and K columns are zero-filled by
//   the TMA unit, so m, n and k need no multiple of the tile (k % 16 == 0 for the 16-byte global strides).
// - Warpgroups 1 and 2 consume rows 0-63 and 64-127 of the tile: for each K block, four
//   wgmma.mma_async m64n128k32 e4m3 instructions (K = 32 each; the first with scale-d = 0 so the partial sum
//   starts from zero inside the tensor cores), then wait, release the stage on its "empty" mbarrier and
//   promote in registers: total += (partial * sa[row, kb]) * sb[n block, kb]. The epilogue casts once.
// Shared-memory operand descriptors (PTX ISA, "Matrix Descriptor Format"): start address >> 4 in bits
// 0-13, leading byte offset >> 4 in bits 16-29 (not used by K-major swizzled layouts), stride byte offset
// >> 4 in bits 32-45 (1024 bytes: 8 rows of 128 bytes, the swizzle atom), base offset 0 (stages are
// 1024-byte aligned), swizzle mode in bits 62-63 (1 = 128-byte swizzle). Stepping K by 32 elements inside
// the 128-byte row adds 32 bytes to the start address; the swizzle is applied on the address bits.
// Tensor maps are encoded on the host with cuTensorMapEncodeTiled, reached through the runtime's driver
// entry point (no libcuda link), and passed as __grid_constant__ kernel parameters.
//
// b must be in 128x128 blocks (one scale per 128-row block of N, a scalar per tile and K block); the
// weight-gradient GEMM with 1x128 scales on b stays on the mma.sync kernel.
#define AHA_WITH_CUDA 1
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "fp8.cuh"

namespace aha::kernels {
namespace {

constexpr int kBlockM = 128, kBlockN = 128, kBlockK = 128;
constexpr int kStages = 4;
constexpr int kThreads = 384;
constexpr int kTileBytes = kBlockM * kBlockK;  // one operand's stage: 128 rows x 128 bytes
constexpr int kStageBytes = 2 * kTileBytes;    // A and B
constexpr int kSmemBytes = kStages * kStageBytes + 1024 /* alignment */ + 2 * kStages * 8 /* mbarriers */;

// Device helpers: sm_90a code only (see the kernel).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}

// Waits until the phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_again:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_again;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}

// 2-D tile load: box at (c0 = column in bytes, c1 = row) of the tensor map into shared memory.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1,
                                            uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], "
      "[%4];" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}

__device__ __forceinline__ uint64_t operand_desc(uint32_t addr) {
  constexpr uint64_t kStride = 1024 >> 4, kLeading = 1, kSwizzle128 = 1;
  return static_cast<uint64_t>((addr & 0x3ffff) >> 4) | (kLeading << 16) | (kStride << 32) |
         (kSwizzle128 << 62);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_wait_all() {
  asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
}

// d[64] (+)= A (64 x 32, descriptor) . B (128 x 32, descriptor)^T; accumulate = 0: d = the product.
__device__ __forceinline__ void wgmma_m64n128k32(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),
        "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
        "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),
        "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
        "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),
        "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(accumulate));
}

#endif

__global__ void __launch_bounds__(kThreads, 1)
    wgmma_gemm_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                      Fp8GemmParams p) {
  // wgmma and setmaxnreg exist on sm_90a only; the build also emits plain sm_90 code, where the kernel is
  // empty and must not be selected (the loader picks the sm_90a image on a compute-capability 9.0 device).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBlockM;
  const int n0 = static_cast<int>(blockIdx.x) * kBlockN;
  // Grouped: the tile's rows belong to one expert (experts start at multiples of 128); a padding tile has
  // nothing to compute (C is zero-initialised by the caller).
  const int group = p.m_group ? p.m_group[m0] : 0;
  if (group < 0) return;

  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem =
      reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * kStageBytes);
  uint64_t* empty = full + kStages;
  const int warpgroup = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 256);  // every consumer thread releases the stage
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  const int k_blocks = static_cast<int>((p.k + kBlockK - 1) / kBlockK);
  if (warpgroup == 0) {
    // Producer: fewer registers needed; the consumers take them.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
    if (threadIdx.x == 0) {
      asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(&map_a)) : "memory");
      asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(&map_b)) : "memory");
      const int b_row = static_cast<int>(static_cast<int64_t>(group) * p.n + n0);
      for (int kb = 0; kb < k_blocks; ++kb) {
        const int s = kb % kStages, round = kb / kStages;
        if (round > 0) mbar_wait(&empty[s], (round - 1) & 1);
        uint8_t* stage = smem + s * kStageBytes;
        mbar_expect_tx(&full[s], kStageBytes);
        tma_load_2d(stage, &map_a, kb * kBlockK, static_cast<int>(m0), &full[s]);
        tma_load_2d(stage + kTileBytes, &map_b, kb * kBlockK, b_row, &full[s]);
      }
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");

  // Consumer warpgroup c (0 or 1): rows c*64 .. c*64+63 of the tile. Accumulator layout of m64nNk32: thread t
  // of the warpgroup holds rows 16 * (t / 32) + (t % 32) / 4 (+8) and columns 8 j + 2 (t % 4) (+1).
  const int c = warpgroup - 1, t = threadIdx.x % 128;
  const int64_t row0 = m0 + c * 64 + 16 * (t / 32) + (t % 32) / 4, row1 = row0 + 8;
  const int64_t k_scales = k_blocks;
  const int64_t n_blocks = (p.n + kBlockN - 1) / kBlockN;
  const float* sb = p.sb + (static_cast<int64_t>(group) * n_blocks + n0 / kBlockN) * k_scales;
  const float* sa0 = row0 < p.m ? p.sa + row0 * k_scales : nullptr;
  const float* sa1 = row1 < p.m ? p.sa + row1 * k_scales : nullptr;

  float partial[64], total[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    partial[i] = 0.0f;
    total[i] = 0.0f;
  }
  for (int kb = 0; kb < k_blocks; ++kb) {
    const int s = kb % kStages, round = kb / kStages;
    mbar_wait(&full[s], round & 1);
    const uint32_t a_addr = smem_addr(smem + s * kStageBytes) + c * 64 * kBlockK;
    const uint32_t b_addr = smem_addr(smem + s * kStageBytes + kTileBytes);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockK / 32; ++kk)
      wgmma_m64n128k32(partial, operand_desc(a_addr + kk * 32), operand_desc(b_addr + kk * 32), kk > 0);
    wgmma_commit();
    // The scales load while the tensor cores work.
    const float scale_b = sb[kb];
    const float scale0 = sa0 ? sa0[kb] : 0.0f, scale1 = sa1 ? sa1[kb] : 0.0f;
    wgmma_wait_all();
    mbar_arrive(&empty[s]);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      total[4 * j + 0] += partial[4 * j + 0] * scale0 * scale_b;
      total[4 * j + 1] += partial[4 * j + 1] * scale0 * scale_b;
      total[4 * j + 2] += partial[4 * j + 2] * scale1 * scale_b;
      total[4 * j + 3] += partial[4 * j + 3] * scale1 * scale_b;
    }
  }

  // Epilogue: rows of another group (a misaligned grouped layout) and out-of-range elements are not written.
  const bool write0 = row0 < p.m && (!p.m_group || p.m_group[row0] == group);
  const bool write1 = row1 < p.m && (!p.m_group || p.m_group[row1] == group);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const int64_t col = n0 + 8 * j + 2 * (t % 4);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const bool write = half == 0 ? write0 : write1;
      const int64_t row = half == 0 ? row0 : row1;
      if (!write) continue;
      const float v0 = total[4 * j + 2 * half], v1 = total[4 * j + 2 * half + 1];
      if (p.c_bf16) {
        __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.c) + row * p.n + col;
        if (col + 1 < p.n && p.n % 2 == 0) {
          *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v0, v1);
        } else {
          if (col < p.n) out[0] = __float2bfloat16_rn(v0);
          if (col + 1 < p.n) out[1] = __float2bfloat16_rn(v1);
        }
      } else {
        float* out = static_cast<float*>(p.c) + row * p.n + col;
        if (col + 1 < p.n && p.n % 2 == 0) {
          *reinterpret_cast<float2*>(out) = make_float2(v0, v1);
        } else {
          if (col < p.n) out[0] = v0;
          if (col + 1 < p.n) out[1] = v1;
        }
      }
    }
  }
#else
  __trap();
#endif
}

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*,
                                 CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion,
                                 CUtensorMapFloatOOBfill);

EncodeTiled encode_tiled() {
  static const EncodeTiled fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      return static_cast<EncodeTiled>(nullptr);
    return reinterpret_cast<EncodeTiled>(f);
  }();
  return fn;
}

// rows x cols bytes, row-major, read in 128 x 128-byte boxes with the 128-byte swizzle; out-of-range
// elements read as zero.
bool make_map(CUtensorMap* map, const uint8_t* base, int64_t rows, int64_t cols) {
  const EncodeTiled encode = encode_tiled();
  if (!encode) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols)};
  const cuuint32_t box[2] = {kBlockK, kBlockM};
  const cuuint32_t element_strides[2] = {1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<uint8_t*>(base), dims, strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

int sm90_fp8_wgmma_status() {
  static const int status = [] {
    if (!encode_tiled()) return static_cast<int>(cudaErrorSymbolNotFound);
    // The plain sm_90 image of the kernel is an empty stub (4 registers); the sm_90a one needs far more. A
    // loader that picked the stub must not be trusted with the GEMM.
    cudaFuncAttributes attr{};
    const cudaError_t err = cudaFuncGetAttributes(&attr, wgmma_gemm_kernel);
    if (err != cudaSuccess) return static_cast<int>(err);
    return attr.numRegs >= 64 ? 0 : static_cast<int>(cudaErrorInvalidDeviceFunction);
  }();
  return status;
}

int sm90_fp8_gemm_nt_wgmma(const Fp8GemmParams& p, void* stream) {
  if (p.b_block_rows != kFp8Group || p.k % 16 != 0 || p.k <= 0 || p.m >= (int64_t{1} << 31) ||
      p.b_groups * p.n >= (int64_t{1} << 31))
    return static_cast<int>(cudaErrorInvalidValue);
  if (p.m == 0 || p.n == 0) return 0;
  if (const int status = sm90_fp8_wgmma_status(); status != 0) return status;
  CUtensorMap map_a, map_b;
  if (!make_map(&map_a, p.a, p.m, p.k) || !make_map(&map_b, p.b, p.b_groups * p.n, p.k))
    return static_cast<int>(cudaErrorInvalidValue);
  cudaError_t err =
      cudaFuncSetAttribute(wgmma_gemm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  const dim3 grid(static_cast<unsigned>((p.n + kBlockN - 1) / kBlockN),
                  static_cast<unsigned>((p.m + kBlockM - 1) / kBlockM));
  wgmma_gemm_kernel<<<grid, kThreads, kSmemBytes, static_cast<cudaStream_t>(stream)>>>(map_a, map_b, p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace aha::kernels
