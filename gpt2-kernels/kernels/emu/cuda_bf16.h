// The CUDA C++ that our kernels use, for g++: lets gpt2-kernels/kernels/*.cu run on CPU
// threads, one std::thread per CUDA thread, one block at a time (see emulate.cpp). Stands
// in for <cuda_bf16.h>, which common.cuh includes; mma.cuh and hopper.cuh (the inline PTX)
// are replaced by the files of this folder. Nothing here is built into gpt2-rs.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

// CUDA's math functions are global; <cmath> puts some only in std.
using std::isnan;

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
// Block-scope `__shared__ T x[N]` becomes a static: shared by the block's threads (blocks
// run one after another). `extern __shared__` is rewritten to `extern` by emulate.sh.
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

struct __nv_bfloat16 {
    uint16_t bits;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(uint32_t(b.bits) << 16); }
// Round to nearest even (NaN stays a NaN), as the device and half::bf16::from_f32.
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)};
    u += 0x7fffu + ((u >> 16) & 1);
    return {uint16_t(u >> 16)};
}
inline __nv_bfloat162 __floats2bfloat162_rn(float x, float y) {
    return {__float2bfloat16_rn(x), __float2bfloat16_rn(y)};
}

template <typename T>
inline T min(T a, T b) {
    return a < b ? a : b;
}
template <typename T>
inline T max(T a, T b) {
    return a < b ? b : a;
}

// Provided by emulate.cpp.
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
// Every lane of the warp contributes `bytes` (at most 64) and receives all 32 contributions.
void emu_warp_allgather(const void* mine, void* all, size_t bytes);
[[noreturn]] void __trap();
// Offset in the dynamic shared memory of the kernel's module if p lies in it (as the
// hardware's shared window), else the low bits of the pointer.
size_t __cvta_generic_to_shared(const void* p);
// Each kernel file's dynamic shared memory (its smem_bytes), registered at start-up.
int emu_register_arena(unsigned char* base, size_t bytes);
// Transaction barriers (emu/hopper.cuh): their state lives in emulate.cpp, by address.
void emu_mbar_init(unsigned long long* bar, unsigned count);
void emu_mbar_arrive(unsigned long long* bar, unsigned expect_tx_bytes);
void emu_mbar_complete_tx(unsigned long long* bar, unsigned bytes);
bool emu_mbar_phase_done(unsigned long long* bar, unsigned parity);
void emu_yield();
// bar.sync id, count: a barrier of `count` threads of the block.
void emu_named_barrier(unsigned id, unsigned count);

template <typename T>
inline T emu_shfl(T v, unsigned src) {
    T all[32];
    emu_warp_allgather(&v, all, sizeof(T));
    return all[src % 32];
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int mask) {
    return emu_shfl(v, (threadIdx.x % 32) ^ unsigned(mask));
}
template <typename T>
inline T __shfl_sync(unsigned, T v, int src) {
    return emu_shfl(v, unsigned(src));
}
template <typename T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta) {
    const unsigned lane = threadIdx.x % 32;
    return emu_shfl(v, lane >= delta ? lane - delta : lane);
}

// The emulated threads are real threads: a real atomic.
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
