// Shared by every kernel module: element loads/stores in f32 or bf16 (always computing
// in f32), warp and block reductions in a fixed order (deterministic), grid-stride loops,
// and the counter-based random numbers of gpt2-kernels/src/rng.rs.
//
// Conventions: every kernel is `extern "C"`, named `<op>_<pass>_<dtype>`; sizes are
// `unsigned int` (rows, columns) or `unsigned long long` (element counts); blocks have
// BLOCK threads unless a kernel says otherwise.
#pragma once
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;
typedef unsigned long long u64;
typedef unsigned int u32;

#define BLOCK 256
#define WARP 32

// ---- element type: storage in T, arithmetic in f32 ---------------------------------
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
// Round to nearest even, as `half::bf16::from_f32` on the CPU.
__device__ __forceinline__ void store(bf16* p, float x) { *p = __float2bfloat16_rn(x); }
// Two adjacent elements in one store (`p` aligned to the pair: 8 bytes for f32, 4 for bf16).
__device__ __forceinline__ void store2(float* p, float x, float y) {
    *reinterpret_cast<float2*>(p) = make_float2(x, y);
}
__device__ __forceinline__ void store2(bf16* p, float x, float y) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
}

// ---- GPT-2's GELU (tanh approximation, `gelu_new`), as gpt2-kernels/src/cpu/gelu.rs --
// tanhf is the accurate libdevice tanh (not tanh.approx): the CPU twin's std tanh is the
// reference. Used by gelu.cu and by the matmul epilogues.
#define GELU_BETA 0.7978846f  // sqrt(2 / pi)
#define GELU_KAPPA 0.044715f
__device__ __forceinline__ float gelu(float x) {
    const float inner = GELU_BETA * (x + GELU_KAPPA * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

// The 32-bit shared-memory address that PTX instructions on shared memory take.
__device__ __forceinline__ u32 smem_addr(const void* p) {
    return (u32)__cvta_generic_to_shared(p);
}

// The block's dynamic shared memory (the launch's shared_mem_bytes), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
    extern __shared__ __align__(16) unsigned char smem_bytes[];
    return smem_bytes;
}

// ---- reductions ---------------------------------------------------------------------
// Butterfly over the warp: every lane ends with the same value, summed in the same order
// on every run.
__device__ __forceinline__ float warp_sum(float x) {
    for (int o = WARP / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = WARP / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ double warp_sum(double x) {
    for (int o = WARP / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Reduces over a block of blockDim.x threads (a multiple of 32, at most 1024): each
// warp reduces, warp 0 reduces the warp results, everyone gets the answer. `scratch`
// holds 32 values; the leading barrier lets callers reuse it back to back.
template <typename F, typename Op>
__device__ __forceinline__ F block_reduce(F x, F* scratch, Op warp_op, F identity) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const int warps = blockDim.x / WARP;
    x = warp_op(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < warps ? scratch[lane] : identity;
    return warp_op(x);
}
struct WarpSum {
    __device__ float operator()(float x) const { return warp_sum(x); }
    __device__ double operator()(double x) const { return warp_sum(x); }
};
struct WarpMax {
    __device__ float operator()(float x) const { return warp_max(x); }
};
__device__ __forceinline__ float block_sum(float x, float* scratch) {
    return block_reduce(x, scratch, WarpSum(), 0.0f);
}
__device__ __forceinline__ double block_sum(double x, double* scratch) {
    return block_reduce(x, scratch, WarpSum(), 0.0);
}
__device__ __forceinline__ float block_max(float x, float* scratch) {
    return block_reduce(x, scratch, WarpMax(), -INFINITY);
}

// ---- loops --------------------------------------------------------------------------
// Element i of n, over a 1-D grid of any size.
#define GRID_STRIDE(i, n)                                                             \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                 \
         i += (u64)gridDim.x * blockDim.x)

// ---- random numbers: a port of gpt2-kernels/src/rng.rs, bit for bit -----------------
__device__ __forceinline__ u64 rng_mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// rng::hash(seed, counter), given rng_mix64(seed).
__device__ __forceinline__ u64 rng_hash(u64 mixed_seed, u64 counter) {
    return rng_mix64(mixed_seed + (counter + 1) * 0x9E3779B97F4A7C15ull);
}
// rng::uniform: the top 24 bits as a multiple of 2^-24 in [0, 1) (both steps exact).
__device__ __forceinline__ float rng_uniform(u64 mixed_seed, u64 counter) {
    return (float)(rng_hash(mixed_seed, counter) >> 40) * (1.0f / 16777216.0f);
}
