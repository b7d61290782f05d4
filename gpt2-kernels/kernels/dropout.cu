// Inverted dropout with a counter-based mask, as gpt2-kernels/src/cpu/dropout.rs:
// element i is kept iff rng::uniform(seed, offset + i) >= p, kept values are scaled by
// `scale` = 1 / (1 - p) (computed once by the host, as on the CPU). The mask is a pure
// function of (seed, offset + i): the backward recomputes it, and it equals the CPU's
// bit for bit (common.cuh ports rng.rs).
//   forward:  out = mask * inp * scale
//   backward: dinp += mask * dout * scale
#include "common.cuh"

__device__ __forceinline__ bool kept(float p, u64 mixed_seed, u64 offset, u64 i) {
    return rng_uniform(mixed_seed, offset + i) >= p;
}

template <typename T>
__device__ void forward(T* out, const T* inp, u64 n, float p, float scale, u64 seed, u64 offset) {
    const u64 mixed = rng_mix64(seed);
    GRID_STRIDE(i, n) store(&out[i], kept(p, mixed, offset, i) ? load(&inp[i]) * scale : 0.0f);
}

template <typename T>
__device__ void backward(T* dinp, const T* dout, u64 n, float p, float scale, u64 seed, u64 offset) {
    const u64 mixed = rng_mix64(seed);
    GRID_STRIDE(i, n) {
        if (kept(p, mixed, offset, i)) store(&dinp[i], load(&dinp[i]) + load(&dout[i]) * scale);
    }
}

#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK) dropout_forward_##S(                \
        T* out, const T* inp, u64 n, float p, float scale, u64 seed, u64 offset) {          \
        forward(out, inp, n, p, scale, seed, offset);                                       \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK) dropout_backward_##S(               \
        T* dinp, const T* dout, u64 n, float p, float scale, u64 seed, u64 offset) {        \
        backward(dinp, dout, n, p, scale, seed, offset);                                    \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
