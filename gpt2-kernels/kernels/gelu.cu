// GELU, tanh approximation (GPT-2's `gelu_new`), as gpt2-kernels/src/cpu/gelu.rs:
//   forward:  out = 0.5 x (1 + tanh(beta (x + kappa x^3)))
//   backward: dinp += dout * gelu'(x)
// The forward is common.cuh's gelu(), shared with the matmul epilogues.
#include "common.cuh"

template <typename T>
__device__ void forward(T* out, const T* inp, u64 n) {
    GRID_STRIDE(i, n) store(&out[i], gelu(load(&inp[i])));
}

template <typename T>
__device__ void backward(T* dinp, const T* inp, const T* dout, u64 n) {
    GRID_STRIDE(i, n) {
        const float x = load(&inp[i]), x2 = x * x;
        const float t = tanhf(GELU_BETA * (x + GELU_KAPPA * x2 * x));
        const float left = 0.5f * (1.0f + t);
        // tanh' = 1 - tanh^2: no cosh, which would overflow for large |x|.
        const float right = 0.5f * x * (1.0f - t * t) * GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x2);
        store(&dinp[i], load(&dinp[i]) + load(&dout[i]) * (left + right));
    }
}

#define INSTANTIATE(T, S)                                                                   \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        gelu_forward_##S(T* out, const T* inp, u64 n) {                                     \
        forward(out, inp, n);                                                               \
    }                                                                                       \
    extern "C" __global__ void __launch_bounds__(BLOCK)                                     \
        gelu_backward_##S(T* dinp, const T* inp, const T* dout, u64 n) {                    \
        backward(dinp, inp, dout, n);                                                       \
    }
INSTANTIATE(float, f32)
INSTANTIATE(bf16, bf16)
